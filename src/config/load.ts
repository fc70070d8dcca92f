/**
 * Flags and environment → one schema → a frozen config. The only module that reads `process.env`.
 *
 * Every option `fooBar` is the flag `--foo-bar` and the variable `FANOUT_FOO_BAR`; a flag wins
 * over the variable. An unknown flag or an invalid value throws a {@link ConfigError} whose message
 * names the flag, so the CLI can print one line and exit.
 */
import { parseArgs } from 'node:util';
import type { z } from 'zod';
import { ConfigError, errorMessage } from '../errors.js';
import { authMode } from './auth-mode.js';
import { withoutCredentials } from './bus-address.js';
import { historyTarget } from './history-target.js';
import { kafkaIngestTarget } from './kafka-ingest.js';
import { serveSchema, type Config, type ServeOptions } from './schema.js';
import { readTls } from './tls.js';

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

/** Options whose values are never echoed in an error message. */
const SECRET_OPTIONS: ReadonlySet<string> = new Set(['jwtSecret', 'apiKey', 'metricsToken', 'secret', 'hookSecret', 'webhookSecret']);
/** Options holding URLs that may carry credentials: echoed without them. */
const URL_OPTIONS: ReadonlySet<string> = new Set(['bus', 'history', 'jwksUrl', 'connectHook', 'subscribeHook', 'publishHook', 'refreshHook', 'webhook']);

/** What a command line gives before validation: option values by key, and which came from the environment. */
interface CommandInput {
  readonly input: Readonly<Record<string, unknown>>;
  readonly fromEnv: ReadonlySet<string>;
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
  const { input, fromEnv, positionals, help } = readCommand(schema, argv, opts);
  return { options: validate(schema, input, fromEnv), positionals, help };
}

function readCommand(
  schema: z.ZodObject,
  argv: readonly string[],
  opts: { env?: NodeJS.ProcessEnv; useEnv?: boolean; booleans?: readonly string[] },
): CommandInput {
  const env = opts.env ?? process.env;
  const keys = Object.keys(schema.shape);
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
  const fromEnv = new Set<string>();
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
        fromEnv.add(key);
      }
    }
  }
  return { input, fromEnv, positionals, help: values.help === true };
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

/** The flag as the user gave it: `--port`, or `--port (from FANOUT_PORT)`. */
function flagOf(key: string, fromEnv: ReadonlySet<string>): string {
  return `--${toFlag(key)}${fromEnv.has(key) ? ` (from ${toEnv(key)})` : ''}`;
}

/** Validates `input` against the schema; the first issue becomes one ConfigError naming its flag. */
function validate<S extends z.ZodObject>(schema: S, input: Readonly<Record<string, unknown>>, fromEnv: ReadonlySet<string>): Readonly<z.output<S>> {
  const result = schema.safeParse(input);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const key = String(issue.path[0] ?? 'arguments');
    const given = input[key];
    // A message that already quotes the bad part (one entry of a list) needs no second quote.
    const shown =
      given === undefined || SECRET_OPTIONS.has(key) || /\bgot\b/.test(issue.message)
        ? ''
        : `, got ${JSON.stringify(URL_OPTIONS.has(key) && typeof given === 'string' ? withoutCredentials(given) : given)}`;
    throw new ConfigError(flagOf(key, fromEnv), `${issue.message}${shown}`);
  }
  return Object.freeze(result.data);
}

/** Parses `fanout serve` flags and FANOUT_* variables into a frozen, cross-checked config. */
export function loadServeConfig(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): Config & { help?: boolean } {
  const { input, fromEnv, positionals, help } = readCommand(serveSchema, argv, { env, useEnv: true });
  const options = validate(serveSchema, input, fromEnv);
  if (positionals.length > 0) throw new ConfigError(positionals[0]!, 'unexpected argument (serve takes only flags)');
  return finishServeConfig(options, fromEnv, help);
}

/** What {@link createConfig} takes: options as the flags give them. */
export type ConfigInput = Partial<z.input<typeof serveSchema>>;

/**
 * Builds a config from code (tests, embedding), with the same defaults, checks and messages as
 * the CLI: a config it returns is one the node can start with.
 */
export function createConfig(overrides: ConfigInput = {}): Config {
  const input: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(overrides)) {
    if (value === undefined) continue;
    input[key] = Array.isArray(value) ? value.join(',') : value;
  }
  return finishServeConfig(validate(serveSchema, input, new Set()), new Set());
}

/**
 * Conflicting options are rejected, then files are read and the history default is chosen, all
 * before anything starts. Errors name the flag (and the variable it came from).
 */
function finishServeConfig(options: ServeOptions, fromEnv: ReadonlySet<string>, help = false): Config & { help?: boolean } {
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
    const auth = authMode({ jwtSecret, jwtPublicKey, jwksUrl });
    const tls = tlsCert !== undefined && tlsKey !== undefined ? readTls(tlsCert, tlsKey) : undefined;
    const ingest = kafkaIngestTarget({ kafkaIngest, kafkaBrokers, kafkaIngestGroup, busPrefix: rest.busPrefix }, rest.bus);
    const config: Config = { ...rest, history: historyTarget(history, rest.bus), tls, auth, jwt: auth.kind !== 'anonymous', kafkaIngest: ingest };
    return Object.freeze(help ? { ...config, help } : config);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    const key = err.flag.replace(/^--/, '').replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
    throw fromEnv.has(key) ? new ConfigError(flagOf(key, fromEnv), err.reason) : err;
  }
}
