/**
 * Structured logging: one JSON object per line on stdout (pino). Every record carries a `msg`
 * and the fields of the event; connection, transaction and queue ids use Halon's names so that
 * lines can be joined across receive, queue and delivery.
 */
import pino from 'pino';

export type Logger = pino.Logger;

export function createLogger(opts: { level?: string; name?: string; destination?: pino.DestinationStream } = {}): Logger {
  const level = opts.level ?? process.env.HALYARD_LOG_LEVEL ?? 'info';
  return pino(
    {
      level,
      name: opts.name,
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    opts.destination ?? pino.destination({ dest: 1, sync: false }),
  );
}
