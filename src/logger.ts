/**
 * JSON logs with pino. Log connects, closes, rejections and limit hits with ip, origin and user;
 * never tokens or message bodies (the redaction list below is a safety net, not the policy).
 */
import { pino, type Logger } from 'pino';

export type { Logger };

/** A logger writing JSON lines to stdout (or stderr with `toStderr`, so stdout stays for output). */
export function createLogger(level: string, bindings: Record<string, unknown> = {}, toStderr = false): Logger {
  return pino(
    {
      level,
      base: { ...bindings },
      redact: { paths: ['token', 'authorization', 'req.headers.authorization', 'req.headers.cookie', 'data', 'body'], remove: true },
    },
    pino.destination({ dest: toStderr ? 2 : 1, sync: false }),
  );
}

/** A logger that writes nothing (tests). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
