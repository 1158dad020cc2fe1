import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { md5OfBody, md5OfMessageAttributes } from '../src/frontend/md5.ts';

describe('md5OfBody', () => {
  it('is the hex MD5 of the UTF-8 bytes', () => {
    assert.equal(md5OfBody('hello'), '5d41402abc4b2a76b9719d911017c592');
    assert.equal(md5OfBody('é'), createHash('md5').update(Buffer.from([0xc3, 0xa9])).digest('hex'));
  });
});

describe('md5OfMessageAttributes', () => {
  // Published values of an independent implementation (npm aws-md5-of-message-attributes, whose
  // README lists them as what SQS returns).
  const string = { attribName1: { DataType: 'String', StringValue: 'attribValue 1' } };
  const number = { customNumberTypeAttrib: { DataType: 'Number.float', StringValue: '4563442423554324324264524243.32543234' } };
  const binary = { binaryAttribute: { DataType: 'Binary', BinaryValue: Buffer.from('Hello binary world!') } };

  it('matches published values for String, custom Number and Binary attributes', () => {
    assert.equal(md5OfMessageAttributes(string), '19e27d4e946b072f3f58da80d94fd778');
    assert.equal(md5OfMessageAttributes(number), '9fe1b90bbd9965bdf77bac517c7d2495');
    assert.equal(md5OfMessageAttributes(binary), '31a92b15d92f8db860eda32aceb656c3');
    assert.equal(md5OfMessageAttributes({ ...string, ...number, ...binary }), 'c932db14a896c663f83c260297d594ff');
  });

  it('does not depend on the order the attributes were given in', () => {
    assert.equal(md5OfMessageAttributes({ ...binary, ...number, ...string }), md5OfMessageAttributes({ ...string, ...number, ...binary }));
  });

  it('hashes the byte layout SQS documents', () => {
    const u32 = (n: number): Buffer => {
      const b = Buffer.alloc(4);
      b.writeUInt32BE(n);
      return b;
    };
    const field = (bytes: Buffer): Buffer => Buffer.concat([u32(bytes.length), bytes]);
    // Names sorted: "a" (Binary.png) before "b" (String); 'ü' is two UTF-8 bytes.
    const expected = Buffer.concat([
      field(Buffer.from('a')), field(Buffer.from('Binary.png')), Buffer.from([2]), field(Buffer.from([0, 1, 2, 255])),
      field(Buffer.from('b')), field(Buffer.from('String')), Buffer.from([1]), field(Buffer.from('grüß', 'utf8')),
    ]);
    const attrs = {
      b: { DataType: 'String', StringValue: 'grüß' },
      a: { DataType: 'Binary.png', BinaryValue: Uint8Array.from([0, 1, 2, 255]) },
    };
    assert.equal(md5OfMessageAttributes(attrs), createHash('md5').update(expected).digest('hex'));
  });
});
