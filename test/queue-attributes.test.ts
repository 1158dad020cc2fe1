import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SqsError } from '../src/core/errors.ts';
import { DEFAULT_KEY_ALIAS } from '../src/kms/types.ts';
import {
  attributeUpdate, conflictingAttribute, effectiveAttributes, intAttribute, keySettingsOf, parseAttributeNames,
  parseQueueAttributes, queueAttributeView, validateQueueName,
} from '../src/frontend/queue-attributes.ts';
import type { QueueRecord } from '../src/store/types.ts';

function sqsError(code: string, message?: RegExp): (e: unknown) => boolean {
  return (e) => {
    assert.ok(e instanceof SqsError, `expected SqsError, got ${String(e)}`);
    assert.equal(e.code, code);
    if (message) assert.match(e.message, message);
    return true;
  };
}

function queue(attributes: Record<string, string> = {}): QueueRecord {
  return { queueId: 'q-1', accountId: '000000000000', tags: {}, lastPurgedAt: null, name: 'orders', createdAt: 1_700_000_000_123, updatedAt: 1_700_000_100_999, attributes };
}

describe('queue names', () => {
  it('accepts 1..80 of [A-Za-z0-9_-]', () => {
    assert.equal(validateQueueName('a'), 'a');
    assert.equal(validateQueueName('Orders_2024-eu'), 'Orders_2024-eu');
    assert.equal(validateQueueName('x'.repeat(80)), 'x'.repeat(80));
  });

  it('refuses other names', () => {
    for (const bad of ['', 'x'.repeat(81), 'has space', 'dot.ted', 'slash/y', 'ünïcode']) {
      assert.throws(() => validateQueueName(bad), sqsError('InvalidParameterValue'), bad);
    }
    assert.throws(() => validateQueueName(undefined), sqsError('MissingParameter'));
    assert.throws(() => validateQueueName(42), sqsError('InvalidParameterValue'));
  });

  it('FIFO: a .fifo name and FifoQueue=true go together; FIFO attributes only on FIFO queues', () => {
    assert.equal(validateQueueName('jobs.fifo'), 'jobs.fifo');
    assert.throws(() => validateQueueName('jobs.fif'), sqsError('InvalidParameterValue'));
    assert.throws(() => validateQueueName(`${'a'.repeat(76)}.fifo`), sqsError('InvalidParameterValue'));
    assert.throws(() => parseQueueAttributes({ FifoQueue: 'true' }), sqsError('InvalidParameterValue'));
    assert.deepEqual(parseQueueAttributes({ FifoQueue: 'true', ContentBasedDeduplication: 'true' }, { fifo: true, creating: true }), { ContentBasedDeduplication: 'true' });
    assert.throws(() => parseQueueAttributes({ FifoQueue: 'false' }, { fifo: true, creating: true }), sqsError('InvalidParameterValue'));
    assert.throws(() => parseQueueAttributes({ FifoQueue: 'true' }, { fifo: true, creating: false }), sqsError('InvalidAttributeValue'));
    assert.throws(() => parseQueueAttributes({ DeduplicationScope: 'group' }, { fifo: true, creating: true }), sqsError('InvalidAttributeValue'));
    assert.throws(() => parseQueueAttributes({ DeduplicationScope: 'queue' }), sqsError('InvalidAttributeName'));
    assert.deepEqual(parseQueueAttributes({ FifoQueue: 'false' }), {});
  });
});

describe('parseQueueAttributes', () => {
  const ranges: [string, number, number][] = [
    ['DelaySeconds', 0, 900],
    ['MaximumMessageSize', 1024, 1_048_576],
    ['MessageRetentionPeriod', 60, 1_209_600],
    ['ReceiveMessageWaitTimeSeconds', 0, 20],
    ['VisibilityTimeout', 0, 43_200],
    ['KmsDataKeyReusePeriodSeconds', 60, 86_400],
  ];

  for (const [name, min, max] of ranges) {
    it(`${name}: accepts ${min}..${max}, refuses outside`, () => {
      assert.deepEqual(parseQueueAttributes({ [name]: String(min) }), { [name]: String(min) });
      assert.deepEqual(parseQueueAttributes({ [name]: String(max) }), { [name]: String(max) });
      if (min > 0) assert.throws(() => parseQueueAttributes({ [name]: String(min - 1) }), sqsError('InvalidAttributeValue'));
      assert.throws(() => parseQueueAttributes({ [name]: String(max + 1) }), sqsError('InvalidAttributeValue'));
      assert.throws(() => parseQueueAttributes({ [name]: 'ten' }), sqsError('InvalidAttributeValue'));
      assert.throws(() => parseQueueAttributes({ [name]: '-1' }), sqsError('InvalidAttributeValue'));
      assert.throws(() => parseQueueAttributes({ [name]: 1.5 }), sqsError('InvalidAttributeValue'));
    });
  }

  it('normalizes integers and booleans', () => {
    assert.deepEqual(parseQueueAttributes({ VisibilityTimeout: '060', SqsManagedSseEnabled: 'FALSE' }), { VisibilityTimeout: '60', SqsManagedSseEnabled: 'false' });
  });

  it('KmsDataKeyReusePeriodSeconds 59 is InvalidAttributeValue', () => {
    assert.throws(() => parseQueueAttributes({ KmsDataKeyReusePeriodSeconds: '59' }), sqsError('InvalidAttributeValue'));
  });

  it('accepts a KMS key, SqsManagedSseEnabled, and JSON policies; refuses bad values', () => {
    const policy = JSON.stringify({ Version: '2012-10-17', Statement: [] });
    const redrive = JSON.stringify({ deadLetterTargetArn: 'arn:aws:sqs:us-east-1:000000000000:dlq', maxReceiveCount: 5 });
    assert.deepEqual(parseQueueAttributes({ KmsMasterKeyId: 'alias/orders', Policy: policy, RedrivePolicy: redrive }), {
      KmsMasterKeyId: 'alias/orders', Policy: policy, RedrivePolicy: redrive,
    });
    assert.throws(() => parseQueueAttributes({ Policy: '{not json' }), sqsError('InvalidAttributeValue'));
    assert.throws(() => parseQueueAttributes({ RedrivePolicy: '[1,2]' }), sqsError('InvalidParameterValue'));
    assert.throws(() => parseQueueAttributes({ RedrivePolicy: JSON.stringify({ deadLetterTargetArn: 'arn:aws:sqs:us-east-1:000000000000:dlq', maxReceiveCount: 0 }) }), sqsError('InvalidParameterValue'));
    assert.throws(() => parseQueueAttributes({ RedrivePolicy: JSON.stringify({ deadLetterTargetArn: 'dlq', maxReceiveCount: 3 }) }), sqsError('InvalidParameterValue'));
    assert.equal(parseQueueAttributes({ RedrivePolicy: JSON.stringify({ deadLetterTargetArn: 'arn:aws:sqs:us-east-1:000000000000:dlq', maxReceiveCount: '7' }) }).RedrivePolicy,
      JSON.stringify({ deadLetterTargetArn: 'arn:aws:sqs:us-east-1:000000000000:dlq', maxReceiveCount: 7 }), 'a count given as text is stored as a number');
    assert.throws(() => parseQueueAttributes({ RedriveAllowPolicy: JSON.stringify({ redrivePermission: 'byQueue' }) }), sqsError('InvalidParameterValue'));
    assert.throws(() => parseQueueAttributes({ RedriveAllowPolicy: JSON.stringify({ redrivePermission: 'some' }) }), sqsError('InvalidParameterValue'));
    assert.throws(() => parseQueueAttributes({ SqsManagedSseEnabled: 'yes' }), sqsError('InvalidAttributeValue'));
    assert.throws(() => parseQueueAttributes({ KmsMasterKeyId: 'key with spaces' }), sqsError('InvalidAttributeValue'));
    assert.throws(() => parseQueueAttributes({ KmsMasterKeyId: 'alias/k', SqsManagedSseEnabled: 'true' }), sqsError('InvalidAttributeValue'));
  });

  it('refuses unknown and read-only names', () => {
    for (const name of ['Colour', 'QueueArn', 'ApproximateNumberOfMessages', 'ContentBasedDeduplication', '__proto__']) {
      assert.throws(() => parseQueueAttributes(JSON.parse(`{"${name}":"1"}`)), sqsError('InvalidAttributeName'), name);
    }
  });

  it('refuses a non-map', () => {
    assert.throws(() => parseQueueAttributes(['VisibilityTimeout']), sqsError('InvalidParameterValue'));
    assert.deepEqual(parseQueueAttributes(undefined), {});
  });
});

describe('defaults and the attribute view', () => {
  it('applies the SQS defaults', () => {
    assert.deepEqual(effectiveAttributes({}), {
      DelaySeconds: '0',
      MaximumMessageSize: '1048576',
      MessageRetentionPeriod: '345600',
      ReceiveMessageWaitTimeSeconds: '0',
      VisibilityTimeout: '30',
      KmsDataKeyReusePeriodSeconds: '300',
      SqsManagedSseEnabled: 'true',
    });
    assert.equal(effectiveAttributes({ KmsMasterKeyId: 'alias/k' }).SqsManagedSseEnabled, 'false');
    assert.equal(intAttribute(queue(), 'VisibilityTimeout'), 30);
    assert.equal(intAttribute(queue({ VisibilityTimeout: '5' }), 'VisibilityTimeout'), 5);
  });

  it('answers All with the computed attributes', async () => {
    const view = await queueAttributeView(queue({ VisibilityTimeout: '45' }), parseAttributeNames(['All']), () => ({ visible: 3, inFlight: 2, delayed: 1 }), 'eu-west-1');
    assert.equal(view.QueueArn, 'arn:aws:sqs:eu-west-1:000000000000:orders');
    assert.equal(view.ApproximateNumberOfMessages, '3');
    assert.equal(view.ApproximateNumberOfMessagesNotVisible, '2');
    assert.equal(view.ApproximateNumberOfMessagesDelayed, '1');
    assert.equal(view.CreatedTimestamp, '1700000000');
    assert.equal(view.LastModifiedTimestamp, '1700000100');
    assert.equal(view.VisibilityTimeout, '45');
    assert.equal(view.Policy, undefined);
  });

  it('answers only the names asked for, and counts only when asked', async () => {
    let counted = 0;
    const view = await queueAttributeView(queue(), parseAttributeNames(['QueueArn', 'DelaySeconds']), () => {
      counted++;
      return { visible: 0, inFlight: 0, delayed: 0 };
    }, 'us-east-1');
    assert.deepEqual(view, { DelaySeconds: '0', QueueArn: 'arn:aws:sqs:us-east-1:000000000000:orders' });
    assert.equal(counted, 0);
    assert.deepEqual(await queueAttributeView(queue(), parseAttributeNames(undefined), () => assert.fail('no counts'), 'us-east-1'), {});
    assert.throws(() => parseAttributeNames(['Bogus']), sqsError('InvalidAttributeName'));
  });

  it('compares CreateQueue attributes with the effective ones', () => {
    const q = queue({ VisibilityTimeout: '60' });
    assert.equal(conflictingAttribute(q, {}), undefined);
    assert.equal(conflictingAttribute(q, { VisibilityTimeout: '60', DelaySeconds: '0' }), undefined);
    assert.equal(conflictingAttribute(q, { VisibilityTimeout: '61' }), 'VisibilityTimeout');
    assert.equal(conflictingAttribute(q, { KmsMasterKeyId: 'alias/k' }), 'KmsMasterKeyId');
  });

  it('turns one kind of SSE off when the other is turned on', () => {
    assert.deepEqual(attributeUpdate({}, { KmsMasterKeyId: 'alias/k' }), { KmsMasterKeyId: 'alias/k', SqsManagedSseEnabled: 'false' });
    assert.deepEqual(attributeUpdate({ KmsMasterKeyId: 'alias/k' }, { SqsManagedSseEnabled: 'true' }), { SqsManagedSseEnabled: 'true', KmsMasterKeyId: '' });
    assert.deepEqual(attributeUpdate({}, { VisibilityTimeout: '9' }), { VisibilityTimeout: '9' });
  });
});

describe('keySettingsOf', () => {
  it('uses the default key and a 300 s reuse period when nothing is set', () => {
    assert.deepEqual(keySettingsOf(queue()), { queueId: 'q-1', kmsMasterKeyId: DEFAULT_KEY_ALIAS, reuseMs: 300_000 });
  });

  it('uses the queue KMS key and reuse period', () => {
    assert.deepEqual(keySettingsOf(queue({ KmsMasterKeyId: 'alias/orders', KmsDataKeyReusePeriodSeconds: '60' })), {
      queueId: 'q-1', kmsMasterKeyId: 'alias/orders', reuseMs: 60_000,
    });
  });

  it('still encrypts with the default key when SqsManagedSseEnabled is false or the key was cleared', () => {
    assert.equal(keySettingsOf(queue({ SqsManagedSseEnabled: 'false' })).kmsMasterKeyId, DEFAULT_KEY_ALIAS);
    assert.equal(keySettingsOf(queue({ KmsMasterKeyId: '' })).kmsMasterKeyId, DEFAULT_KEY_ALIAS);
  });
});
