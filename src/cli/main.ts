#!/usr/bin/env node
/** The `fanout` command: argument parsing and dispatch, no business logic. */
import { readFileSync } from 'node:fs';
import { ConfigError, FanoutError } from '../errors.js';

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
  // Each command's module is loaded when it runs: `fanout --version`, `token` or a `config check`
  // need none of the node (its broker clients alone are hundreds of modules to load).
  switch (command) {
    case 'serve':
      return (await import('./serve.js')).serve(rest);
    case 'haproxy-config':
      return (await import('./haproxy-config.js')).haproxyConfigCommand(rest);
    case 'cluster':
      return (await import('./cluster.js')).clusterCommand(rest);
    case 'token':
      return (await import('./token.js')).tokenCommand(rest);
    case 'config':
      return (await import('./config.js')).configCommand(rest);
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
