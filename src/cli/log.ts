// The CLI's logger: pino writing JSON lines to stderr, so stdout stays for results.
import { pino, type Logger } from 'pino';

export const LOG_LEVELS = ['error', 'warn', 'info', 'debug'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export function createLogger(level: LogLevel): Logger {
  return pino({ level, base: { proc: 'cli' } }, pino.destination(2));
}
