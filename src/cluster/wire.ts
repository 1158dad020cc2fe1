import { PkpError } from '../core/errors.ts';
import type { KeyReason } from '../kms/types.ts';
import type { DecryptPrefetchInstruction, KeyRequestOptions, PrefetchInstruction, SealedKeyDelivery } from '../metadata/types.ts';

/**
 * JSON forms of what crosses NATS between cluster processes, and their checks. Everything from the
 * network is checked field by field before it is acted on; a bad field is an InvalidArgument error.
 */

const ID = /^[\w.:@/+=-]{1,256}$/;
const NODE_ID = /^[A-Za-z0-9._-]{1,64}$/;
const DEK_ID = /^[0-9a-f]{32}$/;
const REASONS = new Set<KeyReason>(['demand', 'prefetch', 'refresh']);

const bad = (what: string): never => {
  throw new PkpError('InvalidArgument', `bad ${what}`);
};
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isTime = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

export function checkId(v: unknown, what: string): string {
  return typeof v === 'string' && ID.test(v) ? v : bad(what);
}

export function checkNodeId(v: unknown): string {
  return typeof v === 'string' && NODE_ID.test(v) ? v : bad('node id');
}

export function checkBytes(v: unknown, what: string, max = 4096): Buffer {
  if (typeof v !== 'string' || v.length > max * 2) bad(what);
  const bytes = Buffer.from(v as string, 'base64');
  return bytes.length > 0 && bytes.length <= max ? bytes : bad(what);
}

export type WireDelivery = Omit<SealedKeyDelivery, 'encryptedDek' | 'sealedMaterial'> & { encryptedDek: string; sealedMaterial: string };

export function encodeDelivery(d: SealedKeyDelivery): WireDelivery {
  return { ...d, encryptedDek: d.encryptedDek.toString('base64'), sealedMaterial: d.sealedMaterial.toString('base64') };
}

export function decodeDelivery(v: unknown): SealedKeyDelivery {
  if (!isObject(v)) return bad('delivery');
  const { dekId, queueId, principal, kmsKeyId, issuedAt, expiresAt, nodeId, prefetched, score, use } = v;
  if (typeof dekId !== 'string' || !DEK_ID.test(dekId)) bad('DEK id');
  if (typeof principal !== 'string' || principal.length > 256) bad('principal');
  if (!isTime(issuedAt) || !isTime(expiresAt) || typeof prefetched !== 'boolean') bad('delivery times');
  if (typeof score !== 'number' || !(score >= 0 && score <= 1)) bad('score');
  if (use !== 'encrypt' && use !== 'decrypt') bad('use');
  return {
    dekId: dekId as string, queueId: checkId(queueId, 'queue id'), principal: principal as string, kmsKeyId: checkId(kmsKeyId, 'KMS key id'),
    issuedAt: issuedAt as number, expiresAt: expiresAt as number, nodeId: checkNodeId(nodeId), prefetched: prefetched as boolean,
    score: score as number, use: use as 'encrypt' | 'decrypt',
    encryptedDek: checkBytes(v.encryptedDek, 'encrypted DEK'), sealedMaterial: checkBytes(v.sealedMaterial, 'sealed key', 256),
  };
}

export function checkKeyOptions(v: unknown): KeyRequestOptions {
  if (v === undefined) return {};
  if (!isObject(v)) return bad('key request options');
  const out: KeyRequestOptions = {};
  if (v.reason !== undefined) out.reason = REASONS.has(v.reason as KeyReason) ? v.reason as KeyReason : bad('reason');
  if (v.deadline !== undefined) out.deadline = isTime(v.deadline) ? v.deadline : bad('deadline');
  if (v.requestedAt !== undefined) out.requestedAt = isTime(v.requestedAt) ? v.requestedAt : bad('requestedAt');
  if (v.retireDekId !== undefined) out.retireDekId = typeof v.retireDekId === 'string' && DEK_ID.test(v.retireDekId) ? v.retireDekId : bad('retireDekId');
  return out;
}

function checkNodeIds(v: unknown): string[] {
  return Array.isArray(v) && v.length <= 1_000 ? v.map(checkNodeId) : bad('node ids');
}

export function checkPrefetch(v: unknown): PrefetchInstruction {
  if (!isObject(v)) return bad('prefetch instruction');
  if (v.reason !== 'prefetch' && v.reason !== 'refresh') bad('reason');
  const out: PrefetchInstruction = {
    queueId: checkId(v.queueId, 'queue id'), principal: checkId(v.principal, 'principal'), nodeIds: checkNodeIds(v.nodeIds), reason: v.reason as 'prefetch' | 'refresh',
  };
  if (v.score !== undefined) out.score = typeof v.score === 'number' && v.score >= 0 && v.score <= 1 ? v.score : bad('score');
  if (v.deadline !== undefined) out.deadline = isTime(v.deadline) ? v.deadline : bad('deadline');
  if (v.minRemainingMs !== undefined) out.minRemainingMs = isTime(v.minRemainingMs) && v.minRemainingMs >= 0 ? v.minRemainingMs : bad('minRemainingMs');
  return out;
}

/** Shape only; MetadataService.prefetchDecrypt checks the values. */
export function checkDecryptPrefetch(v: unknown): DecryptPrefetchInstruction {
  if (!isObject(v)) return bad('decrypt prefetch instruction');
  const out: DecryptPrefetchInstruction = { queueId: checkId(v.queueId, 'queue id'), nodeIds: checkNodeIds(v.nodeIds) };
  if (v.score !== undefined) out.score = v.score as number;
  if (v.deadline !== undefined) out.deadline = v.deadline as number;
  if (v.withinMs !== undefined) out.withinMs = v.withinMs as number;
  if (v.dekIds !== undefined) out.dekIds = v.dekIds as string[];
  if (v.buyMessages !== undefined) out.buyMessages = v.buyMessages as number;
  return out;
}
