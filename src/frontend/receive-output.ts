import { SqsError } from '../core/errors.ts';
import type { ReceivedMessage } from '../store/types.ts';
import { md5OfBody, md5OfMessageAttributes } from './md5.ts';
import { TRACE_HEADER_KEY, attributesToWire, decodeAttributes, selectAttributes } from './message-attributes.ts';
import { optionalStringList, type Params } from './params.ts';

/** The message system attributes this service keeps. */
const KEPT = [
  'SenderId', 'SentTimestamp', 'ApproximateReceiveCount', 'ApproximateFirstReceiveTimestamp', 'AWSTraceHeader',
  'MessageGroupId', 'MessageDeduplicationId', 'SequenceNumber', 'DeadLetterQueueSourceArn',
] as const;
type Kept = (typeof KEPT)[number];

/** Valid names that standard queues here never carry (FIFO, tracing, redrive): accepted, never returned. */
const NEVER_SET = new Set<string>();

/**
 * The system attributes a ReceiveMessage asks for, from MessageSystemAttributeNames (unknown names
 * are an error) and the older AttributeNames (which also takes queue attribute names: ignored).
 */
export function requestedSystemAttributes(p: Params): Set<Kept> {
  const out = new Set<Kept>();
  const add = (name: string, strict: boolean): void => {
    if (name === 'All') for (const k of KEPT) out.add(k);
    else if ((KEPT as readonly string[]).includes(name)) out.add(name as Kept);
    else if (strict && !NEVER_SET.has(name)) throw new SqsError('InvalidAttributeName', `Unknown Attribute ${name.slice(0, 256)}.`);
  };
  for (const name of optionalStringList(p, 'MessageSystemAttributeNames') ?? []) add(name, true);
  for (const name of optionalStringList(p, 'AttributeNames') ?? []) add(name, false);
  return out;
}

export interface OpenedMessage {
  stored: ReceivedMessage;
  body: Buffer;
  attributes: Buffer | null;
}

/** One entry of ReceiveMessage's Messages. MD5OfMessageAttributes covers the attributes returned. */
export function messageOutput(
  m: OpenedMessage,
  system: ReadonlySet<Kept>,
  wantAttribute: (name: string) => boolean,
  now: number,
): Record<string, unknown> {
  const body = m.body.toString('utf8');
  const out: Record<string, unknown> = {
    MessageId: m.stored.messageId,
    ReceiptHandle: m.stored.receiptHandle,
    MD5OfBody: md5OfBody(body),
    Body: body,
  };
  const stored = decodeAttributes(m.attributes);
  const trace = stored[TRACE_HEADER_KEY]?.StringValue;
  delete stored[TRACE_HEADER_KEY];
  if (system.size > 0) {
    const values: Record<Kept, string | undefined> = {
      SenderId: m.stored.senderPrincipal,
      SentTimestamp: String(m.stored.sentAt),
      ApproximateReceiveCount: String(m.stored.receiveCount),
      ApproximateFirstReceiveTimestamp: String(m.stored.firstReceivedAt ?? now),
      AWSTraceHeader: trace,
      MessageGroupId: m.stored.groupId,
      MessageDeduplicationId: m.stored.dedupId,
      SequenceNumber: m.stored.sequenceNumber,
      DeadLetterQueueSourceArn: m.stored.deadLetterSourceArn,
    };
    const attributes: Record<string, string> = {};
    for (const name of system) {
      const value = values[name];
      if (value !== undefined) attributes[name] = value;
    }
    out.Attributes = attributes;
  }
  const selected = selectAttributes(stored, wantAttribute);
  if (Object.keys(selected).length > 0) {
    out.MessageAttributes = attributesToWire(selected);
    out.MD5OfMessageAttributes = md5OfMessageAttributes(selected);
  }
  return out;
}
