import { pino, type Logger } from 'pino';

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
      paths: ['*.plaintext', '*.material', '*.key', '*.body', '*.MessageBody', '*.secret', 'plaintext', 'material', 'body', 'secret'],
      censor: '[redacted]',
    },
  };
  return options.destination ? pino(base, options.destination as never) : pino(base);
}

/** A logger that writes nothing (tests, the simulator). */
export const silentLogger: Logger = pino({ level: 'silent' });
