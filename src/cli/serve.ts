/**
 * `fanout serve`: one node, until SIGTERM/SIGINT.
 *
 * Exit codes: 0 after a graceful drain (the first signal); 128 + the signal number (143 for
 * SIGTERM, 130 for SIGINT) when a second signal cuts the drain short and the process exits at
 * once, as shells report a process killed by that signal; 1 when the drain fails or overruns
 * --drain-delay + --drain-timeout + 10 s (a watchdog, so a stuck broker never blocks a stop).
 */
import { constants } from 'node:os';
import { loadServeConfig } from '../config/load.js';
import { CONFIG_FLAG_HELP, SERVE_HELP } from '../config/schema.js';
import { toFlag } from '../config/load.js';
import { createLogger, flushLogs, type Logger } from '../logger.js';

export async function serve(argv: readonly string[]): Promise<void> {
  const config = loadServeConfig(argv);
  if (config.help) {
    process.stdout.write(serveHelp());
    return;
  }
  // --log-format auto: pretty lines for a person at a terminal, JSON lines for machines.
  const format = config.logFormat === 'auto' ? (process.stdout.isTTY ? 'pretty' : 'json') : config.logFormat;
  const logger = createLogger(config.logLevel, { node: config.nodeId }, false, format);
  // The node's modules load once the configuration is valid: a refused flag is answered at once.
  const { createNode } = await import('../app.js');
  const node = createNode({ config, logger, processMetrics: true });
  node.onFatal((err) => {
    process.stderr.write(`fanout: ${err.message}\n`);
    exitAfterLogs(logger, 2);
  });

  let signals = 0;
  const stop = (signal: string) => {
    signals++;
    if (signals > 1) {
      const number = (constants.signals as Readonly<Record<string, number>>)[signal];
      const code = number ? 128 + number : 1;
      logger.warn({ signal, code }, 'second signal: exiting now');
      exitAfterLogs(logger, code);
      return;
    }
    logger.info({ signal }, 'stopping');
    const watchdog = setTimeout(() => {
      logger.error('drain overran --drain-delay + --drain-timeout + 10 s: exiting');
      exitAfterLogs(logger, 1);
    }, (config.drainDelay + config.drainTimeout + 10) * 1000);
    watchdog.unref();
    node
      .drain()
      .then(() => {
        logger.info('stopped');
        exitAfterLogs(logger, 0);
      })
      .catch((err: unknown) => {
        logger.error({ err }, 'drain failed');
        exitAfterLogs(logger, 1);
      });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('disconnect', () => stop('parent exited'));

  await node.start();
  // Under `fanout cluster` (and in tests), tell the parent which port we got: the signal
  // handlers above are in place by then, so a stop right after this still drains.
  process.send?.({ type: 'listening', port: node.address.port, node: node.id });
  if (process.stderr.isTTY) process.stderr.write(`fanout: serving http://localhost:${node.address.port}/ws (Ctrl-C stops)\n`);
}

/**
 * Exits with `code` once every log line is written, so they come out whole and in order. A
 * process exits once: a later call (a signal during the wait) is ignored.
 */
let exiting = false;
function exitAfterLogs(logger: Logger, code: number): void {
  if (exiting) return;
  exiting = true;
  void flushLogs(logger).then(() => process.exit(code));
}

export function serveHelp(): string {
  const rows = Object.entries({ config: CONFIG_FLAG_HELP, ...SERVE_HELP }).map(([key, text]) => `  --${toFlag(key).padEnd(26)} ${text}`);
  return (
    'Usage: fanout serve [options]\n\nRuns one Fanout node. Every flag is also an environment variable (--max-payload is FANOUT_MAX_PAYLOAD)\n' +
    'and a key of the --config file (max-payload: 65536); a flag wins over the variable, the variable over the file.\n\n' +
    `${rows.join('\n')}\n`
  );
}
