/** `fanout serve`: one node, until SIGTERM/SIGINT (graceful drain) or a second signal (at once). */
import { loadServeConfig } from '../config/load.js';
import { SERVE_HELP } from '../config/schema.js';
import { toFlag } from '../config/load.js';
import { createLogger } from '../logger.js';
import { createNode } from '../node/node.js';

export async function serve(argv: readonly string[]): Promise<void> {
  const config = loadServeConfig(argv);
  if (config.help) {
    process.stdout.write(serveHelp());
    return;
  }
  const logger = createLogger(config.logLevel, { node: config.nodeId });
  const node = createNode({ config, logger });
  await node.start();
  // Under `fanout cluster`, tell the parent which port we got.
  process.send?.({ type: 'listening', port: node.address.port, node: node.id });

  let signals = 0;
  const stop = (signal: string) => {
    signals++;
    if (signals > 1) {
      logger.warn({ signal }, 'second signal: exiting now');
      logger.flush();
      process.exit(1);
    }
    logger.info({ signal }, 'stopping');
    node
      .drain()
      .then(() => {
        logger.info('stopped');
        logger.flush();
        process.exit(0);
      })
      .catch((err: unknown) => {
        logger.error({ err }, 'drain failed');
        process.exit(1);
      });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('disconnect', () => stop('parent exited'));
}

export function serveHelp(): string {
  const rows = Object.entries(SERVE_HELP).map(([key, text]) => `  --${toFlag(key).padEnd(26)} ${text}`);
  return `Usage: fanout serve [options]\n\nRuns one Fanout node. Every flag is also an environment variable: --max-payload is FANOUT_MAX_PAYLOAD.\n\n${rows.join('\n')}\n`;
}
