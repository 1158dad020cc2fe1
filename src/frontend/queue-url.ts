import { isAccountId } from './accounts.ts';
import { isValidQueueName } from './queue-attributes.ts';
import { invalidParameter, missingParameter, queueDoesNotExist } from './wire-errors.ts';

/** Queue URLs: `<base>/<account>/<name>`. Any scheme and host is accepted on the way in. */

export function queueUrl(baseUrl: string, accountId: string, name: string): string {
  return `${baseUrl}/${accountId}/${name}`;
}

export interface QueueRef {
  /** The account the URL names; undefined for a bare name (the caller's own account). */
  accountId: string | undefined;
  name: string;
}

/**
 * The queue a QueueUrl names: `<anything>/<account>/<name>` or the bare name. A path whose account
 * part is no account id, or a name no queue could have, names no queue.
 */
export function queueRefFromUrl(value: unknown): QueueRef {
  if (value === undefined || value === null || value === '') throw missingParameter('QueueUrl');
  if (typeof value !== 'string') throw invalidParameter('QueueUrl must be a string.');
  if (value.length > 2048) throw queueDoesNotExist();
  const path = value.split(/[?#]/, 1)[0]!.replace(/\/+$/, '');
  const parts = path.split('/');
  const name = parts[parts.length - 1]!;
  const accountId = parts.length > 1 ? parts[parts.length - 2]! : undefined;
  if (accountId !== undefined && !isAccountId(accountId)) throw queueDoesNotExist();
  if (!isValidQueueName(name)) throw queueDoesNotExist();
  return { accountId, name };
}
