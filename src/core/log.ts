import { pino, type Logger } from 'pino';
import { PkpError } from './errors.ts';

export type { Logger };

/**
 * Structured logs. Fields that could ever hold a key or a message body are redacted by name, as a
 * second line of defence: code never passes them to the logger in the first place.
 */
export function createLogger(options: { level?: string; name?: string; destination?: NodeJS.WritableStream } = {}): Logger {
  const base = {
    name: options.name ?? 'pkp',
    level: options.level ?? process.env.PKP_LOG_LEVEL ?? 'info',
    redact: {
      // config.*: settings that can carry a password (the PostgreSQL URL, the KMS credentials).
      paths: ['*.plaintext', '*.material', '*.key', '*.body', '*.MessageBody', '*.secret', 'plaintext', 'material', 'body', 'secret',
        'config.postgres', 'config.kmsCredentials'],
      censor: '[redacted]',
    },
  };
  return options.destination ? pino(base, options.destination as never) : pino(base);
}

/**
 * What may be logged of an error: name and code, and the message only for our own typed errors
 * (other messages, e.g. a JSON parser's, can quote the text they choked on).
 */
export function describeError(error: unknown): Record<string, unknown> {
  if (error instanceof PkpError) return { name: error.name, code: error.code, message: error.message };
  if (error instanceof Error) return { name: error.name, code: (error as { code?: unknown }).code };
  return { type: typeof error };
}

/** A logger that writes nothing (tests, the simulator). */
export const silentLogger: Logger = pino({ level: 'silent' });
