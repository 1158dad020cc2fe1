import { SqsError } from '../core/errors.ts';
import { DEFAULT_KEY_ALIAS } from '../kms/types.ts';
import type { QueueKeySettings } from '../metadata/types.ts';
import type { QueueCounts, QueueRecord } from '../store/types.ts';
import { policyProblem } from './queue-policy.ts';
import { normalizeRedriveAllowPolicy, normalizeRedrivePolicy } from './redrive.ts';
import { invalidParameter, missingParameter } from './wire-errors.ts';

/**
 * Queue names and queue attributes: validation, normalization, defaults and the read-only view.
 * The store keeps only the attributes a client set (normalized); defaults are applied on read.
 */

export const DEFAULT_REGION = 'us-east-1';

interface IntRange {
  min: number;
  max: number;
  def: number;
}

export type IntAttributeName =
  | 'DelaySeconds'
  | 'MaximumMessageSize'
  | 'MessageRetentionPeriod'
  | 'ReceiveMessageWaitTimeSeconds'
  | 'VisibilityTimeout'
  | 'KmsDataKeyReusePeriodSeconds';

const INT_ATTRIBUTES: Readonly<Record<string, IntRange>> & Readonly<Record<IntAttributeName, IntRange>> = {
  DelaySeconds: { min: 0, max: 900, def: 0 },
  // 1 MiB, SQS's limit (and default) since 2025.
  MaximumMessageSize: { min: 1024, max: 1_048_576, def: 1_048_576 },
  MessageRetentionPeriod: { min: 60, max: 1_209_600, def: 345_600 },
  ReceiveMessageWaitTimeSeconds: { min: 0, max: 20, def: 0 },
  VisibilityTimeout: { min: 0, max: 43_200, def: 30 },
  KmsDataKeyReusePeriodSeconds: { min: 60, max: 86_400, def: 300 },
};

const JSON_ATTRIBUTES = ['Policy', 'RedrivePolicy', 'RedriveAllowPolicy'] as const;
const SETTABLE = new Set<string>([...Object.keys(INT_ATTRIBUTES), 'KmsMasterKeyId', 'SqsManagedSseEnabled', ...JSON_ATTRIBUTES]);
const READ_ONLY = [
  'QueueArn',
  'ApproximateNumberOfMessages',
  'ApproximateNumberOfMessagesNotVisible',
  'ApproximateNumberOfMessagesDelayed',
  'CreatedTimestamp',
  'LastModifiedTimestamp',
] as const;
/** Attributes only FIFO queues have, with their allowed values (the first is the default). */
const FIFO_ATTRIBUTES: Readonly<Record<string, readonly string[]>> = {
  ContentBasedDeduplication: ['false', 'true'],
  DeduplicationScope: ['queue', 'messageGroup'],
  FifoThroughputLimit: ['perQueue', 'perMessageGroupId'],
};
const READABLE = new Set<string>([...SETTABLE, ...READ_ONLY, 'FifoQueue', ...Object.keys(FIFO_ATTRIBUTES)]);

/** 1..80 of [A-Za-z0-9_-], the `.fifo` suffix included for FIFO queues. */
export function validateQueueName(value: unknown): string {
  if (value === undefined || value === null) throw missingParameter('QueueName');
  if (typeof value !== 'string') throw invalidParameter('QueueName must be a string.');
  if (!isValidQueueName(value)) {
    throw invalidParameter('Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in length; a FIFO queue name ends in .fifo.');
  }
  return value;
}

export function isValidQueueName(name: string): boolean {
  return name.length <= 80 && /^[A-Za-z0-9_-]{1,80}(\.fifo)?$/.test(name);
}

export function isFifoName(name: string): boolean {
  return name.endsWith('.fifo');
}

export function isFifoQueue(queue: QueueRecord): boolean {
  return queue.attributes.FifoQueue === 'true';
}

const invalidValue = (name: string, reason: string): SqsError =>
  new SqsError('InvalidAttributeValue', `Invalid value for the parameter ${name}. Reason: ${reason}`);

/**
 * Validates the Attributes map of CreateQueue or SetQueueAttributes and returns it normalized
 * (integers in canonical form, booleans lower-case). Throws on the first bad entry, so a request
 * with any bad attribute changes nothing.
 */
export function parseQueueAttributes(input: unknown, queue: { fifo: boolean; creating: boolean } = { fifo: false, creating: true }): Record<string, string> {
  if (input === undefined || input === null) return {};
  if (typeof input !== 'object' || Array.isArray(input)) throw invalidParameter('Attributes must be a map of attribute names to string values.');
  const out: Record<string, string> = {};
  for (const [name, raw] of Object.entries(input as Record<string, unknown>)) {
    if (name === 'FifoQueue') {
      const value = typeof raw === 'string' ? raw.toLowerCase() : raw;
      if (value !== 'true' && value !== 'false') throw invalidValue(name, "must be 'true' or 'false'.");
      if (!queue.creating) throw invalidValue(name, 'a queue\'s type cannot be changed.');
      if ((value === 'true') !== queue.fifo) {
        throw invalidParameter(queue.fifo ? 'The attribute FifoQueue must be true for a queue name ending in .fifo.' : 'The name of a FIFO queue must end with the .fifo suffix.');
      }
      continue; // the name decides; the front-end stores FifoQueue for FIFO queues
    }
    const allowed = FIFO_ATTRIBUTES[name];
    if (allowed && queue.fifo) {
      if (typeof raw !== 'string' || !allowed.includes(raw)) throw invalidValue(name, `must be one of ${allowed.join(', ')}.`);
      out[name] = raw;
      continue;
    }
    if (!SETTABLE.has(name)) throw new SqsError('InvalidAttributeName', `Unknown Attribute ${name.slice(0, 256)}.`);
    if (typeof raw !== 'string') throw invalidValue(name, 'must be a string.');
    out[name] = normalizeValue(name, raw);
  }
  if ((out.KmsMasterKeyId ?? '') !== '' && out.SqsManagedSseEnabled === 'true') {
    throw invalidValue('SqsManagedSseEnabled', 'You can use one type of server-side encryption (SSE) at one time. You can either enable KMS SSE or SQS SSE.');
  }
  return out;
}

function normalizeValue(name: string, raw: string): string {
  const range = INT_ATTRIBUTES[name];
  if (range) {
    if (!/^\d{1,10}$/.test(raw)) throw invalidValue(name, 'must be an integer.');
    const n = Number(raw);
    if (n < range.min || n > range.max) throw invalidValue(name, `must be between ${range.min} and ${range.max}.`);
    return String(n);
  }
  switch (name) {
    case 'SqsManagedSseEnabled': {
      const lower = raw.toLowerCase();
      if (lower !== 'true' && lower !== 'false') throw invalidValue(name, "must be 'true' or 'false'.");
      return lower;
    }
    case 'KmsMasterKeyId':
      // '' turns KMS SSE off. Otherwise a key id, key ARN, alias name or alias ARN.
      if (raw !== '' && !/^[A-Za-z0-9:/_.+=@-]{1,2048}$/.test(raw)) throw invalidValue(name, 'must be a KMS key id, key ARN or alias.');
      return raw;
    case 'Policy': {
      // Enforced by the front-end (queue-policy.ts): only documents it can evaluate are kept.
      if (Buffer.byteLength(raw) > 20_480) throw invalidValue(name, 'must be at most 20 KiB.');
      const problem = raw === '' ? undefined : policyProblem(raw);
      if (problem !== undefined) throw invalidValue(name, problem);
      return raw;
    }
    case 'RedrivePolicy': // '' removes it; whether the target exists is checked by the front-end
      return raw === '' ? raw : normalizeRedrivePolicy(raw);
    case 'RedriveAllowPolicy':
      return raw === '' ? raw : normalizeRedriveAllowPolicy(raw);
    default:
      throw new SqsError('InvalidAttributeName', `Unknown Attribute ${name.slice(0, 256)}.`);
  }
}

/**
 * The attributes to store for a SetQueueAttributes request. Switching one kind of SSE on turns the
 * other off, as SQS does: a KMS key clears SqsManagedSseEnabled, SqsManagedSseEnabled=true clears
 * the KMS key.
 */
export function attributeUpdate(current: Readonly<Record<string, string>>, requested: Readonly<Record<string, string>>): Record<string, string> {
  const update = { ...requested };
  if ((requested.KmsMasterKeyId ?? '') !== '' && requested.SqsManagedSseEnabled === undefined) update.SqsManagedSseEnabled = 'false';
  if (requested.SqsManagedSseEnabled === 'true' && requested.KmsMasterKeyId === undefined && (current.KmsMasterKeyId ?? '') !== '') {
    update.KmsMasterKeyId = '';
  }
  return update;
}

/** Stored attributes over the defaults. Empty optional attributes are left out. */
export function effectiveAttributes(stored: Readonly<Record<string, string>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, range] of Object.entries(INT_ATTRIBUTES)) out[name] = String(range.def);
  for (const [name, value] of Object.entries(stored)) {
    if (SETTABLE.has(name) && value !== '') out[name] = value;
  }
  out.SqsManagedSseEnabled ??= out.KmsMasterKeyId ? 'false' : 'true';
  if (stored.FifoQueue === 'true') {
    out.FifoQueue = 'true';
    for (const [name, values] of Object.entries(FIFO_ATTRIBUTES)) out[name] = stored[name] || values[0]!;
  }
  return out;
}

/** For CreateQueue on an existing name: the first requested attribute that differs, if any. */
export function conflictingAttribute(queue: QueueRecord, requested: Readonly<Record<string, string>>): string | undefined {
  const effective = effectiveAttributes(queue.attributes);
  for (const [name, value] of Object.entries(requested)) {
    if ((effective[name] ?? '') !== value) return name;
  }
  return undefined;
}

/** An integer attribute's value in effect (stored, else the default). */
export function intAttribute(queue: QueueRecord, name: IntAttributeName): number {
  const range = INT_ATTRIBUTES[name];
  const stored = queue.attributes[name];
  const n = stored === undefined ? NaN : Number(stored);
  return Number.isInteger(n) && n >= range.min && n <= range.max ? n : range.def;
}

/** GetQueueAttributes' AttributeNames: 'All', or known names (unknown → InvalidAttributeName). */
export function parseAttributeNames(input: unknown): 'all' | Set<string> {
  if (input === undefined || input === null) return new Set();
  if (!Array.isArray(input)) throw invalidParameter('AttributeNames must be a list of strings.');
  const names = new Set<string>();
  for (const name of input) {
    if (typeof name !== 'string') throw invalidParameter('AttributeNames must be a list of strings.');
    if (name === 'All') return 'all';
    if (!READABLE.has(name)) throw new SqsError('InvalidAttributeName', `Unknown Attribute ${name.slice(0, 256)}.`);
    names.add(name);
  }
  return names;
}

export function queueArn(region: string, accountId: string, name: string): string {
  return `arn:aws:sqs:${region}:${accountId}:${name}`;
}

/**
 * What GetQueueAttributes returns. Counts are asked for only when wanted. KmsDataKeyReusePeriodSeconds
 * is always present: every queue here is encrypted (see keySettingsOf).
 */
export async function queueAttributeView(
  queue: QueueRecord,
  wanted: 'all' | ReadonlySet<string>,
  counts: () => Promise<QueueCounts> | QueueCounts,
  region: string,
): Promise<Record<string, string>> {
  const want = (name: string): boolean => wanted === 'all' || wanted.has(name);
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(effectiveAttributes(queue.attributes))) {
    if (want(name)) out[name] = value;
  }
  if (want('QueueArn')) out.QueueArn = queueArn(region, queue.accountId, queue.name);
  if (want('ApproximateNumberOfMessages') || want('ApproximateNumberOfMessagesNotVisible') || want('ApproximateNumberOfMessagesDelayed')) {
    const c = await counts();
    if (want('ApproximateNumberOfMessages')) out.ApproximateNumberOfMessages = String(c.visible);
    if (want('ApproximateNumberOfMessagesNotVisible')) out.ApproximateNumberOfMessagesNotVisible = String(c.inFlight);
    if (want('ApproximateNumberOfMessagesDelayed')) out.ApproximateNumberOfMessagesDelayed = String(c.delayed);
  }
  if (want('CreatedTimestamp')) out.CreatedTimestamp = String(Math.floor(queue.createdAt / 1000));
  if (want('LastModifiedTimestamp')) out.LastModifiedTimestamp = String(Math.floor(queue.updatedAt / 1000));
  return out;
}

/**
 * The key settings the metadata service needs. Every queue is encrypted: with its KmsMasterKeyId
 * when set, else with the service's default key (DEFAULT_KEY_ALIAS) — also when a client sets
 * SqsManagedSseEnabled=false, which here only changes what GetQueueAttributes reports. Storing
 * plaintext is never an option, so that flag cannot turn encryption off.
 */
export function keySettingsOf(queue: QueueRecord): QueueKeySettings {
  const kmsMasterKeyId = queue.attributes.KmsMasterKeyId;
  return {
    queueId: queue.queueId,
    kmsMasterKeyId: kmsMasterKeyId ? kmsMasterKeyId : DEFAULT_KEY_ALIAS,
    reuseMs: intAttribute(queue, 'KmsDataKeyReusePeriodSeconds') * 1000,
  };
}
