import { ACCOUNT_ID, isValidQueueName } from './queue-attributes.ts';
import { invalidParameter, missingParameter, queueDoesNotExist } from './wire-errors.ts';

/** Queue URLs: `<base>/000000000000/<name>`. Any scheme and host is accepted on the way in. */

export function queueUrl(baseUrl: string, name: string): string {
  return `${baseUrl}/${ACCOUNT_ID}/${name}`;
}

/**
 * The queue name a QueueUrl names: `<anything>/000000000000/<name>` or the bare name. A URL of
 * another account, or a name no queue could have, names no queue.
 */
export function queueNameFromUrl(value: unknown): string {
  if (value === undefined || value === null || value === '') throw missingParameter('QueueUrl');
  if (typeof value !== 'string') throw invalidParameter('QueueUrl must be a string.');
  if (value.length > 2048) throw queueDoesNotExist();
  const path = value.split(/[?#]/, 1)[0]!.replace(/\/+$/, '');
  const parts = path.split('/');
  const name = parts[parts.length - 1]!;
  if (parts.length > 1 && parts[parts.length - 2] !== ACCOUNT_ID) throw queueDoesNotExist();
  if (!isValidQueueName(name)) throw queueDoesNotExist();
  return name;
}
