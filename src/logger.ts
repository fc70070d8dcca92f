/**
 * Logs with pino. Log connects, closes, rejections and limit hits with ip, origin and user;
 * never tokens or message bodies (the redaction list below is a safety net, not the policy).
 *
 * Two formats on one destination: JSON lines (for machines; the default when stdout is not a
 * terminal) or human-readable lines from pino-pretty (the default on a terminal). Both go
 * through one asynchronous sonic-boom, so {@link flushLogs} can wait until every line is written.
 */
import { createRequire } from 'node:module';
import { pino, type Logger } from 'pino';

export type { Logger };

/** pino-pretty, loaded by the first pretty logger: JSON logs (a node under a supervisor, every test) never load it. */
const loadPretty = (): typeof import('pino-pretty') => createRequire(import.meta.url)('pino-pretty') as typeof import('pino-pretty');

/** How log lines look: `json` lines, or `pretty` ones for a person at a terminal. */
export type LogFormat = 'json' | 'pretty';

type Destination = ReturnType<typeof pino.destination>;

/** The destination of each logger {@link createLogger} made, for {@link flushLogs}. */
const destinations = new WeakMap<Logger, Destination>();

/** A logger writing to stdout (or stderr with `toStderr`, so stdout stays for output). */
export function createLogger(level: string, bindings: Record<string, unknown> = {}, toStderr = false, format: LogFormat = 'json'): Logger {
  // minLength 1 writes every line at once as minLength 0 would, and makes flush(cb) wait for the
  // writes in flight (with 0, sonic-boom calls the callback at once).
  const destination = pino.destination({ dest: toStderr ? 2 : 1, sync: false, minLength: 1 });
  const prettify = format === 'pretty' ? loadPretty().prettyFactory({ singleLine: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'node', messageFormat: '{if node}{node}: {end}{msg}' }) : undefined;
  const logger = pino(
    {
      level,
      base: { ...bindings },
      redact: { paths: ['token', 'authorization', 'req.headers.authorization', 'req.headers.cookie', 'data', 'body'], remove: true },
    },
    prettify ? { write: (line: string) => destination.write(prettify(line)) } : destination,
  );
  destinations.set(logger, destination);
  return logger;
}

/**
 * Resolves once every line logged so far is written (at most after `timeoutMs`, so a stdout
 * nobody reads never holds an exit). Call it before `process.exit`: pino's own exit hook writes
 * what is left synchronously, which can overtake a write still in flight and print lines out of
 * order ("stopped" before "drained").
 */
export function flushLogs(logger: Logger, timeoutMs = 2000): Promise<void> {
  const destination = destinations.get(logger);
  if (!destination) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, timeoutMs);
    timer.unref();
    try {
      destination.flush(() => {
        clearTimeout(timer);
        resolve();
      });
    } catch {
      clearTimeout(timer);
      resolve();
    }
  });
}

/** A logger that writes nothing (tests). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
