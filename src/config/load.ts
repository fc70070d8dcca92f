/**
 * Flags and environment → one schema → a frozen config. The only module that reads `process.env`.
 *
 * Every option `fooBar` is the flag `--foo-bar` and the variable `FANOUT_FOO_BAR`; a flag wins
 * over the variable. An unknown flag or an invalid value throws a {@link ConfigError} whose message
 * names the flag, so the CLI can print one line and exit.
 */
import { parseArgs } from 'node:util';
import type { z } from 'zod';
import { ConfigError } from '../errors.js';
import { serveSchema, type Config } from './schema.js';

/** `maxConnectionsPerIp` → `max-connections-per-ip`. */
export function toFlag(key: string): string {
  return key.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());
}

/** `maxConnectionsPerIp` → `FANOUT_MAX_CONNECTIONS_PER_IP`. */
export function toEnv(key: string): string {
  return 'FANOUT_' + toFlag(key).replace(/-/g, '_').toUpperCase();
}

/** What a command's parse gives: its options and its positional arguments. */
export interface Parsed<T> {
  readonly options: Readonly<T>;
  readonly positionals: readonly string[];
  readonly help: boolean;
}

/**
 * Parses `argv` (without the command name) against a zod object schema whose keys are options.
 * Boolean options are those listed in `booleans`; every other option takes a value.
 * With `envPrefix` set, variables like `FANOUT_PORT` fill options the flags leave out.
 */
export function parseCommand<S extends z.ZodObject>(
  schema: S,
  argv: readonly string[],
  opts: { env?: NodeJS.ProcessEnv; useEnv?: boolean; booleans?: readonly string[] } = {},
): Parsed<z.output<S>> {
  const env = opts.env ?? process.env;
  const keys = Object.keys(schema.shape);
  const booleans = new Set(opts.booleans ?? []);
  const parseOptions: Record<string, { type: 'string' | 'boolean' }> = { help: { type: 'boolean' } };
  for (const key of keys) parseOptions[toFlag(key)] = { type: booleans.has(key) ? 'boolean' : 'string' };

  let values: Record<string, string | boolean | undefined>;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: [...argv],
      options: parseOptions,
      strict: true,
      allowPositionals: true,
    }) as { values: Record<string, string | boolean | undefined>; positionals: string[] });
  } catch (err) {
    const message = (err as Error).message;
    const flag = /'(-{1,2}[^' ]+)/.exec(message)?.[1] ?? 'arguments';
    if ((err as { code?: string }).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
      throw new ConfigError(flag, 'unknown option (see --help)');
    }
    throw new ConfigError(flag, message.split('\n')[0] ?? message);
  }

  const input: Record<string, unknown> = {};
  for (const key of keys) {
    const fromFlag = values[toFlag(key)];
    if (fromFlag !== undefined) {
      input[key] = fromFlag;
      continue;
    }
    if (opts.useEnv) {
      const fromEnv = env[toEnv(key)];
      if (fromEnv !== undefined && fromEnv !== '') {
        input[key] = booleans.has(key) ? !['0', 'false', 'no', 'off'].includes(fromEnv.toLowerCase()) : fromEnv;
      }
    }
  }

  const result = schema.safeParse(input);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const key = String(issue.path[0] ?? 'arguments');
    const given = input[key];
    const source = values[toFlag(key)] === undefined && opts.useEnv && given !== undefined ? ` (from ${toEnv(key)})` : '';
    const shown = given === undefined ? '' : `, got ${JSON.stringify(given)}`;
    throw new ConfigError(`--${toFlag(key)}${source}`, `${issue.message}${shown}`);
  }
  return { options: Object.freeze(result.data), positionals, help: values.help === true };
}

/** Parses `fanout serve` flags and FANOUT_* variables into a frozen, cross-checked config. */
export function loadServeConfig(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): Config & { help?: boolean } {
  const { options, help, positionals } = parseCommand(serveSchema, argv, { env, useEnv: true });
  if (positionals.length > 0) throw new ConfigError(positionals[0]!, 'unexpected argument (serve takes only flags)');
  return checkServeConfig(options, help);
}

/** Builds a config from code (tests, embedding), with the same defaults and checks as the CLI. */
export function createConfig(overrides: Partial<z.input<typeof serveSchema>> = {}): Config {
  const input: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(overrides)) {
    if (value === undefined) continue;
    input[key] = Array.isArray(value) ? value.join(',') : value;
  }
  const result = serveSchema.safeParse(input);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    throw new ConfigError(`--${toFlag(String(issue.path[0]))}`, issue.message);
  }
  return checkServeConfig(Object.freeze(result.data));
}

/** Conflicting options are rejected before anything starts. */
function checkServeConfig(config: Config, help?: boolean): Config & { help?: boolean } {
  if ((config.tlsCert === undefined) !== (config.tlsKey === undefined)) {
    throw new ConfigError(config.tlsCert ? '--tls-key' : '--tls-cert', '--tls-cert and --tls-key go together');
  }
  const keys = [config.jwtSecret, config.jwtPublicKey, config.jwksUrl].filter((k) => k !== undefined);
  if (keys.length > 1) {
    throw new ConfigError('--jwt-secret', 'give only one of --jwt-secret, --jwt-public-key and --jwks-url');
  }
  return help ? Object.freeze({ ...config, help }) : config;
}
