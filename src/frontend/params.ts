import { SqsError } from '../core/errors.ts';
import { invalidParameter, missingParameter } from './wire-errors.ts';

/** Readers for request parameters: each either returns a well-typed value or throws the SQS error. */

export type Params = Readonly<Record<string, unknown>>;

export function asParams(input: unknown): Params {
  if (input === undefined || input === null) return {};
  if (typeof input !== 'object' || Array.isArray(input)) throw invalidParameter('The request body must be a JSON object.');
  return input as Params;
}

const absent = (value: unknown): boolean => value === undefined || value === null;

export function requiredString(p: Params, name: string): string {
  const value = p[name];
  if (absent(value) || value === '') throw missingParameter(name);
  if (typeof value !== 'string') throw invalidParameter(`${name} must be a string.`);
  return value;
}

export function optionalString(p: Params, name: string, maxLength = 1024): string | undefined {
  const value = p[name];
  if (absent(value)) return undefined;
  if (typeof value !== 'string') throw invalidParameter(`${name} must be a string.`);
  if (value.length > maxLength) throw invalidParameter(`${name} must be at most ${maxLength} characters long.`);
  return value;
}

export function optionalInt(p: Params, name: string, min: number, max: number): number | undefined {
  const value = p[name];
  if (absent(value)) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw invalidParameter(`Value ${String(value).slice(0, 40)} for parameter ${name} is invalid. Reason: must be an integer between ${min} and ${max}.`);
  }
  return value;
}

export function requiredInt(p: Params, name: string, min: number, max: number): number {
  const value = optionalInt(p, name, min, max);
  if (value === undefined) throw missingParameter(name);
  return value;
}

export function optionalStringList(p: Params, name: string): string[] | undefined {
  const value = p[name];
  if (absent(value)) return undefined;
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) throw invalidParameter(`${name} must be a list of strings.`);
  return value as string[];
}

export const MAX_BATCH_ENTRIES = 10;

export interface BatchEntry {
  id: string;
  params: Params;
}

/** Entries of a batch request: 1..10 objects with distinct, well-formed Ids. */
export function batchEntries(p: Params, entryKind: string): BatchEntry[] {
  const value = p.Entries;
  if (absent(value) || (Array.isArray(value) && value.length === 0)) {
    throw new SqsError('EmptyBatchRequest', `There should be at least one ${entryKind} in the request.`);
  }
  if (!Array.isArray(value)) throw invalidParameter('Entries must be a list.');
  if (value.length > MAX_BATCH_ENTRIES) {
    throw new SqsError('TooManyEntriesInBatchRequest', `Maximum number of entries per request are ${MAX_BATCH_ENTRIES}. You have sent ${value.length}.`);
  }
  const seen = new Set<string>();
  return value.map((raw: unknown) => {
    const params = asParams(raw);
    const id = params.Id;
    if (absent(id) || id === '') throw missingParameter('Id');
    if (typeof id !== 'string' || !/^[A-Za-z0-9_-]{1,80}$/.test(id)) {
      throw new SqsError('InvalidBatchEntryId', 'A batch entry id can only contain alphanumeric characters, hyphens and underscores. It can be at most 80 letters long.');
    }
    if (seen.has(id)) throw new SqsError('BatchEntryIdsNotDistinct', `Id ${id} repeated.`);
    seen.add(id);
    return { id, params };
  });
}
