/** Waits (for I/O, not for time) until `done` holds; fails after a real-time bound. */
export async function until(done: () => boolean, what: string, limitMs = 15_000): Promise<void> {
  const start = Date.now();
  while (!done()) {
    if (Date.now() - start > limitMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
