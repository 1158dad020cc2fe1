import { SqsError } from '../core/errors.ts';
import { invalidParameter, missingParameter } from './wire-errors.ts';

/** The characters SQS accepts in a body or a string attribute value (XML 1.0 Char). */
const DISALLOWED = /[^\t\n\r\x20-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/u;

/** The first disallowed code point of `text`, or undefined. Lone surrogates count as disallowed. */
export function firstDisallowedChar(text: string): number | undefined {
  const m = DISALLOWED.exec(text);
  return m ? m[0].codePointAt(0) : undefined;
}

export function invalidContents(where: string, codePoint: number): SqsError {
  return new SqsError(
    'InvalidMessageContents',
    `Invalid binary character '#x${codePoint.toString(16).toUpperCase()}' was found in ${where}, the set of allowed characters is #x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF`,
  );
}

/** Validates a MessageBody: present, non-empty, allowed characters. Returns its UTF-8 size. */
export function validateBody(body: unknown): number {
  if (body === undefined || body === null || body === '') throw missingParameter('MessageBody');
  if (typeof body !== 'string') throw invalidParameter('MessageBody must be a string.');
  const bad = firstDisallowedChar(body);
  if (bad !== undefined) throw invalidContents('the message body', bad);
  return Buffer.byteLength(body, 'utf8');
}

/** The size check of SendMessage: body plus every attribute's name, type and value. */
export function checkMessageSize(totalBytes: number, maxBytes: number): void {
  if (totalBytes > maxBytes) {
    throw invalidParameter(`One or more parameters are invalid. Reason: Message must be shorter than ${maxBytes} bytes.`);
  }
}
