/**
 * Receipt handles. Clients treat them as opaque; the store reads them back. A handle is the
 * base64url of `queueId:messageId:nonce`, where the nonce is fresh on every receive, so a handle
 * names one particular receive of one message.
 */

export interface ReceiptHandle {
  queueId: string;
  messageId: string;
  nonce: string;
}

/** SQS caps receipt handles at 1024 characters; anything longer cannot be one of ours. */
const MAX_HANDLE_CHARS = 1024;
const QUEUE_ID = /^[0-9a-f]{32}$/;
const NONCE = /^[0-9a-f]{32}$/;

export function encodeReceiptHandle(handle: ReceiptHandle): string {
  return Buffer.from(`${handle.queueId}:${handle.messageId}:${handle.nonce}`, 'utf8').toString('base64url');
}

/** The parts of a handle, or undefined when the string is not shaped like a handle of this store. */
export function decodeReceiptHandle(handle: string): ReceiptHandle | undefined {
  if (typeof handle !== 'string' || handle.length === 0 || handle.length > MAX_HANDLE_CHARS) return undefined;
  const raw = Buffer.from(handle, 'base64url');
  const text = raw.toString('utf8');
  // Node's decoder silently skips foreign characters and bad UTF-8; an exact round trip rules both out.
  if (Buffer.from(text, 'utf8').toString('base64url') !== handle) return undefined;
  // Queue id and nonce are hex, so the first and last colons delimit the message id whatever it holds.
  const first = text.indexOf(':');
  const last = text.lastIndexOf(':');
  if (first < 0 || last <= first + 1) return undefined;
  const queueId = text.slice(0, first);
  const messageId = text.slice(first + 1, last);
  const nonce = text.slice(last + 1);
  if (!QUEUE_ID.test(queueId) || !NONCE.test(nonce)) return undefined;
  return { queueId, messageId, nonce };
}
