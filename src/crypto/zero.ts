/** Overwrites key material in place so a dropped key does not linger in memory. */
export function zeroize(buf: Buffer | Uint8Array | undefined | null): void {
  if (buf) buf.fill(0);
}
