// Where the integration tests find the real servers they run against, and what they do when one is
// missing: CI (PKP_REQUIRE_SERVICES=1, set by .ci/run after it has started them) fails; a user's
// `npm test` on a machine without them skips those tests and says why.
import { existsSync } from 'node:fs';
import { connect } from 'node:net';

export const NATS_URL = process.env.PKP_TEST_NATS_URL ?? 'nats://127.0.0.1:4222';
/** A server (its maintenance database) where the tests may create and drop databases of their own. */
export const POSTGRES_URL = process.env.PKP_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

const required = process.env.PKP_REQUIRE_SERVICES === '1';

/** Whether host:port accepts a TCP connection within a second. */
function answers(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = connect({ host: hostname, port: Number(port), timeout: 1_000 });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
    socket.once('timeout', () => done(false));
  });
}

/** `false` (run) when the server answers; else a skip message, or a thrown error where it is required. */
export async function skipUnless(name: string, url: string): Promise<false | string> {
  if (await answers(url)) return false;
  const message = `${name} does not answer at ${url} (start it, or set PKP_TEST_${name.toUpperCase()}_URL)`;
  if (required) throw new Error(`${message}; PKP_REQUIRE_SERVICES=1 requires it`);
  return message;
}

/** Debian's nats-server, for the tests that start (and stop) a NATS server of their own. */
export const NATS_SERVER = '/usr/sbin/nats-server';

/** `false` (run) when the nats-server binary is installed; else a skip message, or a thrown error where it is required. */
export function natsServerMissing(): false | string {
  if (existsSync(NATS_SERVER)) return false;
  if (required) throw new Error(`${NATS_SERVER} is not installed; PKP_REQUIRE_SERVICES=1 requires it`);
  return `${NATS_SERVER} is not installed (Debian package nats-server)`;
}
