/**
 * Waits (for I/O, not for time) until `done` holds; fails after a real-time bound. `done` may ask
 * a server (a promise); `pollMs` paces such questions.
 */
export async function until(done: () => boolean | Promise<boolean>, what: string, limitMs = 15_000, pollMs = 5): Promise<void> {
  const start = Date.now();
  while (!(await done())) {
    if (Date.now() - start > limitMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
}
