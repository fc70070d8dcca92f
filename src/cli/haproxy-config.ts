/** `fanout haproxy-config`: prints a haproxy.cfg for the given nodes. */
import { parseCommand } from '../config/load.js';
import { HAPROXY_CONFIG_HELP, haproxyConfigSchema } from '../config/commands.js';
import { ConfigError } from '../errors.js';
import { HAPROXY_DEFAULTS, haproxyConfig } from '../haproxy/config.js';

export function haproxyConfigCommand(argv: readonly string[]): void {
  if (argv.includes('--help')) {
    process.stdout.write(HAPROXY_CONFIG_HELP + '\n');
    return;
  }
  const { options, positionals } = parseCommand(haproxyConfigSchema, argv);
  if (positionals.length > 0) throw new ConfigError(positionals[0]!, 'unexpected argument');
  if (options.tlsCert === undefined && options.redirectPort !== undefined) throw new ConfigError('--redirect-port', 'needs --tls-cert');
  if (options.redirectPort !== undefined && options.redirectPort === options.port) throw new ConfigError('--redirect-port', 'must differ from --port');
  process.stdout.write(haproxyConfig({ ...options, checkInterval: HAPROXY_DEFAULTS.checkInterval }));
}
