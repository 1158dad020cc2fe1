import { SqsError } from '../core/errors.ts';

/**
 * Dead-letter queue settings: RedrivePolicy (where a queue's messages go after maxReceiveCount
 * receives) and RedriveAllowPolicy (which queues may use a queue as their dead-letter queue).
 * Parsed into canonical JSON when set, so the stored text is always well formed.
 */

export interface RedrivePolicy {
  deadLetterTargetArn: string;
  maxReceiveCount: number;
}

export interface RedriveAllowPolicy {
  redrivePermission: 'allowAll' | 'denyAll' | 'byQueue';
  sourceQueueArns?: string[];
}

export interface QueueArnParts {
  region: string;
  accountId: string;
  name: string;
}

const invalid = (name: string, reason: string): SqsError =>
  new SqsError('InvalidParameterValue', `Value for parameter ${name} is invalid. Reason: ${reason}`);

export function parseQueueArn(arn: string): QueueArnParts | undefined {
  const m = /^arn:aws:sqs:([a-z0-9-]{1,64}):(\d{12}):([A-Za-z0-9_-]{1,80}(?:\.fifo)?)$/.exec(arn);
  return m ? { region: m[1]!, accountId: m[2]!, name: m[3]! } : undefined;
}

function objectOf(name: string, text: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw invalid(name, 'the value is not valid JSON.');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalid(name, 'the value must be a JSON object.');
  return value as Record<string, unknown>;
}

/** Validates a RedrivePolicy and returns it in canonical form (maxReceiveCount a number). */
export function normalizeRedrivePolicy(text: string): string {
  const v = objectOf('RedrivePolicy', text);
  for (const key of Object.keys(v)) {
    if (key !== 'deadLetterTargetArn' && key !== 'maxReceiveCount') throw invalid('RedrivePolicy', `unknown key ${key.slice(0, 64)}.`);
  }
  if (typeof v.deadLetterTargetArn !== 'string' || !parseQueueArn(v.deadLetterTargetArn)) {
    throw invalid('RedrivePolicy', 'deadLetterTargetArn must be the ARN of an SQS queue.');
  }
  const count = typeof v.maxReceiveCount === 'string' && /^\d{1,4}$/.test(v.maxReceiveCount) ? Number(v.maxReceiveCount) : v.maxReceiveCount;
  if (typeof count !== 'number' || !Number.isInteger(count) || count < 1 || count > 1000) {
    throw invalid('RedrivePolicy', 'maxReceiveCount must be an integer from 1 to 1000.');
  }
  return JSON.stringify({ deadLetterTargetArn: v.deadLetterTargetArn, maxReceiveCount: count });
}

/** Validates a RedriveAllowPolicy and returns it in canonical form. */
export function normalizeRedriveAllowPolicy(text: string): string {
  const v = objectOf('RedriveAllowPolicy', text);
  const permission = v.redrivePermission;
  if (permission !== 'allowAll' && permission !== 'denyAll' && permission !== 'byQueue') {
    throw invalid('RedriveAllowPolicy', 'redrivePermission must be allowAll, denyAll or byQueue.');
  }
  if (permission !== 'byQueue') {
    if (v.sourceQueueArns !== undefined) throw invalid('RedriveAllowPolicy', 'sourceQueueArns is allowed only with byQueue.');
    return JSON.stringify({ redrivePermission: permission });
  }
  const arns = v.sourceQueueArns;
  if (!Array.isArray(arns) || arns.length < 1 || arns.length > 10 || !arns.every((a) => typeof a === 'string' && parseQueueArn(a))) {
    throw invalid('RedriveAllowPolicy', 'byQueue needs 1 to 10 source queue ARNs in sourceQueueArns.');
  }
  return JSON.stringify({ redrivePermission: permission, sourceQueueArns: arns });
}

/** The queue's redrive policy, if it has one (stored canonical: see normalizeRedrivePolicy). */
export function redrivePolicyOf(attributes: Readonly<Record<string, string>>): RedrivePolicy | undefined {
  const text = attributes.RedrivePolicy;
  if (!text) return undefined;
  try {
    const v = JSON.parse(text) as Partial<RedrivePolicy>;
    if (typeof v.deadLetterTargetArn === 'string' && typeof v.maxReceiveCount === 'number') return v as RedrivePolicy;
  } catch {
    // stored before validation existed: no redrive
  }
  return undefined;
}

/** Whether a queue's RedriveAllowPolicy lets the source queue use it as a dead-letter queue. Default: allowAll. */
export function allowsSource(attributes: Readonly<Record<string, string>>, sourceArn: string): boolean {
  const text = attributes.RedriveAllowPolicy;
  if (!text) return true;
  try {
    const v = JSON.parse(text) as RedriveAllowPolicy;
    if (v.redrivePermission === 'allowAll') return true;
    if (v.redrivePermission === 'denyAll') return false;
    return (v.sourceQueueArns ?? []).includes(sourceArn);
  } catch {
    return true;
  }
}
