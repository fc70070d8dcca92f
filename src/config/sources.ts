/**
 * Where each option came from, and how an error names it: a flag as `--max-payload`, a variable
 * as `--max-payload (from FANOUT_MAX_PAYLOAD)`, a file's key by its path as
 * `namespaces[1].history-size in fanout.yaml`, a key given to `createConfig` as its flag (or, for
 * a key that is no option, as written). One validation turns the first zod issue into one
 * ConfigError line, so every source fails in the same words.
 */
import type { z } from 'zod';
import { ConfigError } from '../errors.js';
import { withoutCredentials } from './bus-address.js';
import { typeMessage } from './values.js';

/** Where one top-level option came from; a key not in the map came from a flag (or from code). */
export type Origin = { readonly kind: 'env' } | { readonly kind: 'file'; readonly file: string };

/** Origins by option key. */
export type Origins = ReadonlyMap<string, Origin>;

/** `maxConnectionsPerIp` → `max-connections-per-ip`. */
export function toFlag(key: string): string {
  return key.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());
}

/** `max-connections-per-ip` → `maxConnectionsPerIp`. */
export function toKey(flag: string): string {
  return flag.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/** `maxConnectionsPerIp` → `FANOUT_MAX_CONNECTIONS_PER_IP`. */
export function toEnv(key: string): string {
  return 'FANOUT_' + toFlag(key).replace(/-/g, '_').toUpperCase();
}

/** Options whose values are never echoed in an error message, and masked by `fanout config print`. */
export const SECRET_OPTIONS: ReadonlySet<string> = new Set(['jwtSecret', 'apiKey', 'metricsToken', 'secret', 'hookSecret', 'webhookSecret', 'pusherSecret']);
/** Options holding URLs that may carry credentials: echoed without them. */
export const URL_OPTIONS: ReadonlySet<string> = new Set(['bus', 'history', 'jwksUrl', 'connectHook', 'subscribeHook', 'publishHook', 'refreshHook', 'webhook', 'pusherWebhook']);

/** The name of the option at `path` (a key, then list indexes and keys below it) for its origin. */
export function nameOf(path: readonly PropertyKey[], origins: Origins): string {
  const [key, ...rest] = path.map(String);
  if (key === undefined) return 'arguments';
  const origin = origins.get(key);
  if (origin?.kind === 'file') return `${pathText([key, ...rest], toFlag)} in ${origin.file}`;
  if (rest.length > 0) return pathText([key, ...rest], (k) => k);
  return `--${toFlag(key)}${origin?.kind === 'env' ? ` (from ${toEnv(key)})` : ''}`;
}

/** `['namespaces', 1, 'historySize']` → `namespaces[1].history-size` (with `name` applied to keys). */
function pathText(path: readonly string[], name: (key: string) => string): string {
  let text = '';
  for (const part of path) text += /^\d+$/.test(part) ? `[${part}]` : `${text ? '.' : ''}${name(part)}`;
  return text;
}

/**
 * Validates `input` against `schema`; the first issue becomes one ConfigError naming its option
 * by path and origin, with the value given (unless secret, and without URL credentials).
 */
export function validate<S extends z.ZodType>(schema: S, input: Readonly<Record<string, unknown>>, origins: Origins): z.output<S> {
  const result = schema.safeParse(input, { error: typeMessage });
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  if (issue.code === 'unrecognized_keys') {
    const unknown = String(issue.keys[0]);
    const path = [...issue.path, unknown];
    // A top-level key that is no option has no flag: from code it is named as the caller wrote it.
    const fromFile = origins.get(String(path[0]))?.kind === 'file';
    const name = fromFile || issue.path.length > 0 ? nameOf(path, origins) : unknown;
    const known = knownKeys(schema, issue.path);
    const near = closest(unknown, known);
    const shown = near === undefined ? '' : ` (did you mean ${fromFile ? toFlag(near) : near}?)`;
    throw new ConfigError(name, `unknown option${shown}`);
  }
  const given = at(input, issue.path);
  const last = String(issue.path[issue.path.length - 1] ?? '');
  const secret = SECRET_OPTIONS.has(String(issue.path[0])) || SECRET_OPTIONS.has(last) || holdsSecret(given);
  // A message that already quotes the bad part (one entry of a list) needs no second quote.
  const shown =
    given === undefined || secret || /\bgot\b/.test(issue.message) || (issue.code === 'invalid_type' && issue.expected === 'never')
      ? ''
      : `, got ${JSON.stringify(URL_OPTIONS.has(last) && typeof given === 'string' ? withoutCredentials(given) : given)}`;
  throw new ConfigError(nameOf(issue.path, origins), `${issue.message}${shown}`);
}

/** True for a mapping or list with a secret somewhere in it (`pusher-apps: {secret: …}` where a list was expected). */
function holdsSecret(value: unknown): boolean {
  if (value === null || typeof value !== 'object') return false;
  return Object.entries(value).some(([key, inner]) => SECRET_OPTIONS.has(key) || holdsSecret(inner));
}

/** The value at `path` in `input`, or undefined. */
function at(input: unknown, path: readonly PropertyKey[]): unknown {
  let value = input;
  for (const part of path) {
    if (value === null || typeof value !== 'object') return undefined;
    value = (value as Record<PropertyKey, unknown>)[part];
  }
  return value;
}

/** The keys an object schema at `path` (keys and list indexes) knows, for "did you mean". */
function knownKeys(schema: z.ZodType, path: readonly PropertyKey[]): string[] {
  let node: unknown = schema;
  for (const part of path) {
    node = unwrap(node);
    const def = (node as { def?: { type?: string; shape?: Record<string, unknown>; element?: unknown } }).def;
    if (def?.type === 'object' && typeof part === 'string') node = def.shape?.[part];
    else if (def?.type === 'array') node = def.element;
    else return [];
  }
  const def = (unwrap(node) as { def?: { type?: string; shape?: Record<string, unknown> } }).def;
  return def?.type === 'object' ? Object.keys(def.shape ?? {}) : [];
}

/** The schema inside defaults, optionals and pipes: what the value is checked against first. */
function unwrap(node: unknown): unknown {
  for (;;) {
    const def = (node as { def?: { type?: string; innerType?: unknown; in?: unknown } }).def;
    if (def?.type === 'default' || def?.type === 'optional' || def?.type === 'prefault') node = def.innerType;
    else if (def?.type === 'pipe') node = def.in;
    else return node;
  }
}

/** The known key nearest to `key` (at most 2 edits, case and dashes ignored), or undefined. */
function closest(key: string, known: readonly string[]): string | undefined {
  const norm = (s: string) => s.toLowerCase().replace(/[-_]/g, '');
  let best: string | undefined;
  let bestDistance = 3;
  for (const candidate of known) {
    const d = distance(norm(key), norm(candidate));
    if (d < bestDistance) [best, bestDistance] = [candidate, d];
  }
  return best;
}

/** Levenshtein distance. */
function distance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) next[j] = Math.min(row[j]! + 1, next[j - 1]! + 1, row[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    row = next;
  }
  return row[b.length]!;
}
