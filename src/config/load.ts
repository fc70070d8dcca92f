/**
 * Flags, environment and a config file → one schema → a frozen config. The only module that
 * reads `process.env`.
 *
 * Every option `fooBar` is the flag `--foo-bar`, the variable `FANOUT_FOO_BAR` and the key
 * `foo-bar` of a `--config` file; a flag wins over the variable, the variable over the file, the
 * file over the default. An unknown option or an invalid value throws a {@link ConfigError} whose
 * message names it where it was given, so the CLI can print one line and exit.
 */
import { parseArgs } from 'node:util';
import type { z } from 'zod';
import { ConfigError, errorMessage } from '../errors.js';
import { authMode } from './auth-mode.js';
import { readConfigFile } from './file.js';
import { resolvePusherApps } from './pusher-apps.js';
import { historyTarget } from './history-target.js';
import { kafkaIngestTarget } from './kafka-ingest.js';
import { serveSchema, type Config, type ServeOptions } from './schema.js';
import { nameOf, toEnv, toFlag, toKey, validate, type Origin, type Origins } from './sources.js';
import { readTls } from './tls.js';

/** What a command's parse gives: its options and its positional arguments. */
export interface Parsed<T> {
  readonly options: Readonly<T>;
  readonly positionals: readonly string[];
  readonly help: boolean;
}

/** What a command line gives before validation: option values by key, and where each came from. */
interface CommandInput {
  readonly input: Readonly<Record<string, unknown>>;
  readonly origins: Origins;
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
  const { input, origins, positionals, help } = readCommand(schema, argv, opts);
  return { options: Object.freeze(validate(schema, input, origins)), positionals, help };
}

function readCommand(
  schema: z.ZodObject,
  argv: readonly string[],
  opts: { env?: NodeJS.ProcessEnv; useEnv?: boolean; booleans?: readonly string[]; fileOnly?: ReadonlySet<string>; extra?: readonly string[] },
): CommandInput {
  const env = opts.env ?? process.env;
  const keys = [...Object.keys(schema.shape).filter((key) => !opts.fileOnly?.has(key)), ...(opts.extra ?? [])];
  const booleans = new Set(opts.booleans ?? []);
  const parseOptions: Record<string, { type: 'string' | 'boolean' }> = { help: { type: 'boolean' } };
  for (const key of keys) parseOptions[toFlag(key)] = { type: booleans.has(key) ? 'boolean' : 'string' };

  let values: Record<string, string | boolean | undefined>;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: joinNegativeValues(argv, parseOptions),
      options: parseOptions,
      strict: true,
      allowPositionals: true,
    }) as { values: Record<string, string | boolean | undefined>; positionals: string[] });
  } catch (err) {
    const message = errorMessage(err);
    const flag = /'(-{1,2}[^' ]+)/.exec(message)?.[1] ?? 'arguments';
    if ((err as { code?: string }).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
      throw new ConfigError(flag, 'unknown option (see --help)');
    }
    throw new ConfigError(flag, message.split('\n')[0] ?? message);
  }

  const input: Record<string, unknown> = {};
  const origins = new Map<string, Origin>();
  for (const key of keys) {
    const fromFlag = values[toFlag(key)];
    if (fromFlag !== undefined) {
      input[key] = fromFlag;
      continue;
    }
    if (opts.useEnv) {
      const value = env[toEnv(key)];
      if (value !== undefined && value !== '') {
        input[key] = booleans.has(key) ? !['0', 'false', 'no', 'off'].includes(value.toLowerCase()) : value;
        origins.set(key, { kind: 'env' });
      }
    }
  }
  return { input, origins, positionals, help: values.help === true };
}

/**
 * `--history-size -1` as `--history-size=-1`: parseArgs takes a value that starts with `-` for an
 * option and refuses it as "ambiguous"; a negative number after a flag that takes a value is that
 * flag's value, so it reaches the schema and gets the schema's own answer ("expected at least 0").
 */
function joinNegativeValues(argv: readonly string[], options: Readonly<Record<string, { type: 'string' | 'boolean' }>>): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const next = argv[i + 1];
    if (arg.startsWith('--') && !arg.includes('=') && options[arg.slice(2)]?.type === 'string' && next !== undefined && /^-\d/.test(next)) {
      out.push(`${arg}=${next}`);
      i++;
    } else {
      out.push(arg);
    }
  }
  return out;
}

/** Options only a config file can set: they have no flag and no variable. */
const FILE_ONLY: ReadonlySet<string> = new Set<string>(['namespaces', 'pusherApps']);

/**
 * Parses `fanout serve` flags, FANOUT_* variables and the `--config` file (or FANOUT_CONFIG)
 * into a frozen, cross-checked config.
 */
export function loadServeConfig(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): Config & { help?: boolean } {
  const { input, origins, positionals, help } = readServeInput(argv, env);
  if (positionals.length > 0) throw new ConfigError(positionals[0]!, 'unexpected argument (serve takes only flags)');
  const options = validate(serveSchema, input, origins);
  return finishServeConfig(options, origins, help);
}

/** The serve options as given, flags over variables over the file, not yet validated. */
export function readServeInput(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): CommandInput {
  const read = readCommand(serveSchema, argv, { env, useEnv: true, fileOnly: FILE_ONLY, extra: ['config'] });
  const { config: file, ...given } = read.input;
  // `serve --help` prints the help whatever the file holds.
  if (file === undefined || read.help) return { ...read, input: given };
  const origins = new Map(read.origins);
  const source = readConfigFile(String(file), nameOf(['config'], origins));
  origins.delete('config');
  const input: Record<string, unknown> = { ...given };
  for (const [key, value] of Object.entries(source.input)) {
    if (key in input) continue;
    input[key] = value;
    origins.set(key, { kind: 'file', file: source.file });
  }
  return { ...read, input, origins };
}

/** What {@link createConfig} takes: options as the flags give them, or as typed values (numbers, lists as arrays). */
export type ConfigInput = Partial<z.input<typeof serveSchema>>;

/**
 * Builds a config from code (tests, embedding), with the same defaults, checks and messages as
 * the CLI: a config it returns is one the node can start with. It checks at run time what its
 * type says, for callers in plain JavaScript: an unknown key or a value of the wrong type throws
 * a ConfigError naming the key.
 */
export function createConfig(overrides: ConfigInput = {}): Config {
  if (overrides === null || typeof overrides !== 'object' || Array.isArray(overrides)) {
    throw new ConfigError('createConfig', `expected an object of options, got ${Array.isArray(overrides) ? 'an array' : JSON.stringify(overrides)}`);
  }
  const input = Object.fromEntries(Object.entries(overrides).filter(([, value]) => value !== undefined));
  return finishServeConfig(validate(serveSchema, input, new Map()), new Map());
}

/**
 * Conflicting options are rejected, then files are read and the history default is chosen, all
 * before anything starts. Errors name the option where it was given (flag, variable or file).
 */
export function finishServeConfig(options: ServeOptions, origins: Origins, help = false): Config & { help?: boolean } {
  const { history, tlsCert, tlsKey, jwtSecret, jwtPublicKey, jwksUrl, kafkaIngest, kafkaBrokers, kafkaIngestGroup, ...rest } = options;
  try {
    if ((tlsCert === undefined) !== (tlsKey === undefined)) {
      throw new ConfigError(tlsCert ? '--tls-key' : '--tls-cert', '--tls-cert and --tls-key go together');
    }
    if (rest.refreshHook !== undefined && rest.connectHook === undefined) {
      throw new ConfigError('--refresh-hook', 'needs --connect-hook: it renews the sessions the connect hook admitted with `expires_at`');
    }
    if (rest.webhook !== undefined && rest.webhookSecret === undefined) {
      throw new ConfigError('--webhook-secret', 'required with --webhook (the back end verifies every webhook request with it)');
    }
    const pusherApps = resolvePusherApps(rest);
    const auth = authMode({ jwtSecret, jwtPublicKey, jwksUrl });
    const tls = tlsCert !== undefined && tlsKey !== undefined ? readTls(tlsCert, tlsKey) : undefined;
    const ingest = kafkaIngestTarget({ kafkaIngest, kafkaBrokers, kafkaIngestGroup, busPrefix: rest.busPrefix }, rest.bus);
    const config: Config = { ...rest, history: historyTarget(history, rest.bus), tls, auth, jwt: auth.kind !== 'anonymous', kafkaIngest: ingest, pusherApps };
    return Object.freeze(help ? { ...config, help } : config);
  } catch (err) {
    if (!(err instanceof ConfigError) || !err.flag.startsWith('--')) throw err;
    const key = toKey(err.flag.slice(2));
    return rethrowNamed(err, key, origins);
  }
}

/** `err`, named by where `key` was given when that was not a flag. */
function rethrowNamed(err: ConfigError, key: string, origins: Origins): never {
  throw origins.has(key) ? new ConfigError(nameOf([key], origins), err.reason) : err;
}

export { toEnv, toFlag };
