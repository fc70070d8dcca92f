/**
 * `fanout config print`: the configuration a node would run with, as a YAML config file (keys are
 * the flags' names), each value with where it came from, secrets masked. It is checked first, as
 * `serve` checks it, so what it prints is a configuration that starts; fed back with `--config`
 * (after putting the secrets back) it gives the same node.
 */
import { Document, isMap, isScalar, isSeq, type Pair } from 'yaml';
import { DEFAULTS } from './defaults.js';
import { finishServeConfig, readServeInput } from './load.js';
import { serveSchema, type Namespace, type PusherAppOptions, type ServeOptions } from './schema.js';
import { SECRET_OPTIONS, toEnv, toFlag, URL_OPTIONS, validate, type Origins } from './sources.js';

/** What a masked secret is printed as. */
export const MASK = '********';

/** Options parsed into structures by the schema: printed as given (or as their default), not as parsed. */
const STRUCTURED: ReadonlySet<string> = new Set(['bus', 'history', 'allowedOrigins', 'kafkaBrokers']);

/** One option of the effective configuration: its value (masked) and where it came from. */
export interface EffectiveOption {
  readonly key: string;
  readonly value: unknown;
  readonly from: string;
}

/**
 * The effective options for `argv` (serve flags, `--config` among them) and `env`, in the
 * schema's order. Throws the ConfigError `serve` would throw for them.
 */
export function effectiveOptions(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): EffectiveOption[] {
  const { input, origins } = readServeInput(argv, env);
  const options = validate(serveSchema, input, origins);
  finishServeConfig(options, origins);
  const out: EffectiveOption[] = [];
  for (const key of Object.keys(serveSchema.shape)) {
    const given = input[key] !== undefined;
    const value = valueOf(key, options, input, given);
    if (value === undefined) continue;
    out.push({ key, value: mask(key, value), from: given ? originText(key, origins) : key === 'history' ? 'follows bus' : 'default' });
  }
  return out;
}

/** The value to print for `key`: the parsed one for plain values, the given (or default) text for structured ones. */
function valueOf(key: string, options: ServeOptions, input: Readonly<Record<string, unknown>>, given: boolean): unknown {
  // A generated node id differs on every start: printing one would be a value no node runs with.
  if (key === 'nodeId' && !given) return undefined;
  if (key === 'namespaces') return options.namespaces.length === 0 ? undefined : options.namespaces.map(namespaceAsFile);
  if (key === 'pusherApps') return options.pusherApps.length === 0 ? undefined : options.pusherApps.map(namespaceAsFile);
  if (!STRUCTURED.has(key)) return (options as Record<string, unknown>)[key];
  if (given) return input[key];
  if (key === 'bus') return typeof input.bus === 'string' ? input.bus : DEFAULTS.bus;
  // With no --history, history, recovery and presence live on the bus (history-target.ts).
  if (key === 'history') return typeof input.bus === 'string' ? input.bus : DEFAULTS.bus;
  if (key === 'allowedOrigins') return [];
  return undefined;
}

/** A namespace or a Pusher app with its keys as a file writes them (`history-size`), secrets and hook URLs' passwords masked. */
function namespaceAsFile(ns: Namespace | PusherAppOptions): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(ns)
      .filter(([, value]) => value !== undefined)
      .map(([key, value]) => [toFlag(key), SECRET_OPTIONS.has(key) ? MASK : typeof value === 'string' && URL_OPTIONS.has(key) ? maskUrl(value) : value]),
  );
}

/** Secrets as {@link MASK}; URLs with their passwords masked (the user stays, so the reader sees whose). */
function mask(key: string, value: unknown): unknown {
  if (SECRET_OPTIONS.has(key)) return MASK;
  if (URL_OPTIONS.has(key) && typeof value === 'string') return maskUrl(value);
  return value;
}

/** `redis://app:hunter2@h:6379` → `redis://app:********@h:6379`, for each URL of a comma list. */
export function maskUrl(value: string): string {
  return value.replace(/(^|\/\/|,)([^@/,:]*):[^@/,]*@/g, `$1$2:${MASK}@`).replace(/(^|\/\/|,)([^@/,:]+)@/g, `$1${MASK}@`);
}

function originText(key: string, origins: Origins): string {
  const origin = origins.get(key);
  if (origin?.kind === 'env') return toEnv(key);
  if (origin?.kind === 'file') return origin.file;
  return `--${toFlag(key)}`;
}

/** The effective options as a YAML config file, each line's source in a comment. */
export function effectiveYaml(options: readonly EffectiveOption[]): string {
  const doc = new Document(Object.fromEntries(options.map((o) => [toFlag(o.key), o.value])));
  doc.commentBefore = ' The configuration fanout serve runs with: flags, then FANOUT_* variables, then the\n --config file, then defaults. Secrets are masked.';
  const from = new Map(options.map((o) => [toFlag(o.key), o.from]));
  if (isMap(doc.contents)) {
    for (const pair of doc.contents.items as Pair[]) {
      const source = isScalar(pair.key) ? from.get(String(pair.key.value)) : undefined;
      if (source === undefined) continue;
      // Lists in flow style ([a, b]), so every option is one line with its source beside it.
      if (isSeq(pair.value) && !pair.value.items.some(isMap)) pair.value.flow = true;
      if (isScalar(pair.value) || (isSeq(pair.value) && pair.value.flow)) pair.value.comment = ` ${source}`;
      else if (isScalar(pair.key)) pair.key.commentBefore = ` ${source}`;
    }
  }
  return doc.toString({ lineWidth: 0 });
}
