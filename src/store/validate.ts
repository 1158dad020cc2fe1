/**
 * The input checks every message store makes before it touches its database, so that bad input
 * fails the same way (PkpError('InvalidArgument')) whatever the store.
 */
import { PkpError } from '../core/errors.ts';
import { BACKLOG_DEFAULTS, BACKLOG_LIMITS, type BacklogDekQuery } from './types.ts';

export function requireAccount(accountId: string): void {
  if (!/^\d{12}$/.test(accountId)) throw new PkpError('InvalidArgument', 'an account id is 12 digits');
}

export function requireFinite(name: string, value: number): void {
  if (!Number.isFinite(value)) throw new PkpError('InvalidArgument', `${name} must be a finite number`);
}

export function requireIntIn(name: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new PkpError('InvalidArgument', `${name} must be an integer in ${min}..${max}`);
  }
  return value;
}

/** A backlogDeks call's bounds, defaults applied: visible until `until`, `scan` messages, `maxDeks` DEKs. */
export function backlogBounds(queueId: string, query: BacklogDekQuery): { until: number; scan: number; maxDeks: number } {
  if (typeof queueId !== 'string' || queueId === '') throw new PkpError('InvalidArgument', 'queueId must be a non-empty string');
  if (typeof query !== 'object' || query === null) throw new PkpError('InvalidArgument', 'query must be an object');
  requireFinite('now', query.now);
  const withinMs = query.withinMs ?? BACKLOG_DEFAULTS.withinMs;
  if (!(Number.isFinite(withinMs) && withinMs >= 0)) throw new PkpError('InvalidArgument', 'withinMs must be a finite number >= 0');
  const maxDeks = requireIntIn('maxDeks', query.maxDeks ?? BACKLOG_LIMITS.maxDeks, 1, BACKLOG_LIMITS.maxDeks);
  const scan = requireIntIn('scanMessages', query.scanMessages ?? BACKLOG_DEFAULTS.scanMessages, 1, BACKLOG_LIMITS.scanMessages);
  return { until: query.now + withinMs, scan, maxDeks };
}

export function closedError(): PkpError {
  return new PkpError('StoreClosed', 'the message store is closed');
}
