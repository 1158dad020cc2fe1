import type { AccessEvent, KeyUsageEvent, PkpEvent, QueueStatsEvent } from './types.ts';

/**
 * Events that arrive from the network are checked field by field before anyone acts on them: a
 * malformed or foreign message is dropped (and counted by the caller), never half-used.
 */
const ID = /^[\w.:@/+=-]{1,256}$/;
const OPS = new Set(['send', 'receive', 'delete', 'other']);
const KINDS = new Set(['hit', 'miss', 'expired', 'evicted', 'inserted']);
const USES = new Set(['encrypt', 'decrypt']);

const isId = (v: unknown): v is string => typeof v === 'string' && ID.test(v);
const isTime = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0;
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0;
const optional = <T>(v: unknown, check: (x: unknown) => x is T): boolean => v === undefined || check(v);
const isBool = (v: unknown): v is boolean => typeof v === 'boolean';

export function parseEvent(value: unknown): PkpEvent | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const e = value as Record<string, unknown>;
  if (!isTime(e.at) || !isId(e.queueId) || !isId(e.nodeId)) return undefined;
  switch (e.type) {
    case 'access': {
      if (!isId(e.principal) || typeof e.op !== 'string' || !OPS.has(e.op) || !isCount(e.bytes)) return undefined;
      if (!optional(e.keyHit, isBool) || !optional(e.keyExpiresAt, isTime) || !optional(e.prefetchedFirstUse, isBool)) return undefined;
      const out: AccessEvent = { type: 'access', at: e.at, queueId: e.queueId, nodeId: e.nodeId, principal: e.principal, op: e.op as AccessEvent['op'], bytes: e.bytes };
      if (e.keyHit !== undefined) out.keyHit = e.keyHit as boolean;
      if (e.keyExpiresAt !== undefined) out.keyExpiresAt = e.keyExpiresAt as number;
      if (e.prefetchedFirstUse !== undefined) out.prefetchedFirstUse = e.prefetchedFirstUse as boolean;
      if (e.count !== undefined) {
        if (!isCount(e.count) || e.count < 1 || !isTime(e.firstAt) || e.firstAt > e.at || e.keyHit === false) return undefined;
        out.count = e.count;
        out.firstAt = e.firstAt;
      }
      return out;
    }
    case 'key': {
      if (typeof e.kind !== 'string' || !KINDS.has(e.kind) || typeof e.use !== 'string' || !USES.has(e.use) || !isBool(e.prefetched)) return undefined;
      if (!optional(e.principal, isId) || !optional(e.dekId, isId)) return undefined;
      const out: KeyUsageEvent = {
        type: 'key', at: e.at, nodeId: e.nodeId, kind: e.kind as KeyUsageEvent['kind'], use: e.use as KeyUsageEvent['use'], queueId: e.queueId, prefetched: e.prefetched,
      };
      if (e.principal !== undefined) out.principal = e.principal as string;
      if (e.dekId !== undefined) out.dekId = e.dekId as string;
      return out;
    }
    case 'queue-stats': {
      if (!isCount(e.backlog)) return undefined;
      const out: QueueStatsEvent = { type: 'queue-stats', at: e.at, queueId: e.queueId, nodeId: e.nodeId, backlog: e.backlog };
      return out;
    }
    default:
      return undefined;
  }
}
