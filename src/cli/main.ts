#!/usr/bin/env node
/** The `fanout` command: argument parsing and dispatch, no business logic. */
import { readFileSync } from 'node:fs';
import { ConfigError, FanoutError } from '../errors.js';
import { clusterCommand } from './cluster.js';
import { configCommand } from './config.js';
import { haproxyConfigCommand } from './haproxy-config.js';
import { serve } from './serve.js';
import { tokenCommand } from './token.js';

const USAGE = `Usage: fanout <command> [options]

Commands:
  serve            run one node (default port 3000, memory bus)
  haproxy-config   print a haproxy.cfg for a set of nodes
  cluster          run N nodes with HAProxy in front of them
  token            print a signed development JWT (for --jwt-secret)
  config           check a --config file, or print the configuration serve would run with

Run \`fanout <command> --help\` for a command's options.
`;

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'serve':
      return serve(rest);
    case 'haproxy-config':
      return haproxyConfigCommand(rest);
    case 'cluster':
      return clusterCommand(rest);
    case 'token':
      return tokenCommand(rest);
    case 'config':
      return configCommand(rest);
    case '--version':
    case '-v': {
      const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
      process.stdout.write(pkg.version + '\n');
      return;
    }
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE);
      return;
    case undefined:
      // A usage error, as CLIs answer one: the usage on stderr, exit 2.
      process.stderr.write(USAGE);
      process.exitCode = 2;
      return;
    default:
      throw new ConfigError(command, `unknown command (one of serve, haproxy-config, cluster, token, config)`);
  }
}

main(process.argv.slice(2)).catch((err: unknown) => {
  if (err instanceof FanoutError) {
    process.stderr.write(`fanout: ${err.message}\n`);
    process.exit(err instanceof ConfigError ? 2 : 1);
  }
  const e = err as NodeJS.ErrnoException;
  if (e?.code === 'EADDRINUSE') {
    process.stderr.write(`fanout: invalid --port: ${e.message}\n`);
    process.exit(2);
  }
  process.stderr.write(`fanout: ${e?.stack ?? String(err)}\n`);
  process.exit(1);
});
