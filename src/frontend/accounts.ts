import { createHash } from 'node:crypto';

/**
 * Accounts. Every credential belongs to a 12-digit account; unless configured, its own, derived
 * from its access key id (stable across restarts, distinct per credential in practice).
 */

export function defaultAccountId(accessKeyId: string): string {
  const digest = createHash('sha256').update(`pkp-account/${accessKeyId}`).digest();
  // 10^12 leading digits of a 64-bit value; the first digit is kept non-zero so no default
  // account is the legacy account 000000000000.
  const n = digest.readBigUInt64BE(0) % 900_000_000_000n + 100_000_000_000n;
  return n.toString();
}

export function isAccountId(text: string): boolean {
  return /^\d{12}$/.test(text);
}

/** The IAM ARN a credential's requests are made as (policies name it, or its account's root). */
export function principalArnOf(accountId: string, accessKeyId: string): string {
  return `arn:aws:iam::${accountId}:user/${accessKeyId}`;
}
