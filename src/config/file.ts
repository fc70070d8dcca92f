/**
 * `--config FILE`: a YAML file (JSON is YAML too) whose keys are the serve flags' own names
 * (`max-payload: 65536`) plus what only a file can say (`namespaces:`). Read once at load and
 * turned into the same input the flags give, keyed by option; the one schema then checks it.
 *
 * Parsed with the `yaml` package: YAML 1.2 (so `on`, `no` and `yes` stay strings, and only
 * `true`/`false` are booleans), duplicate keys refused, errors with line and column, no
 * dependencies of its own.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { ConfigError } from '../errors.js';
import { firstLine } from './files.js';
import { toFlag, toKey } from './sources.js';

/** `yaml`, loaded by the first file read: a node without --config never loads it (about 70 modules). */
const loadYaml = (): typeof import('yaml') => createRequire(import.meta.url)('yaml') as typeof import('yaml');

/** Keys of a file: lower-case words joined by dashes, as the flags are. */
const FLAG_NAME = /^[a-z][a-z0-9]*(-[a-z0-9]+)*$/;

/** A config file read: its options keyed as the schema keys them (`maxPayload`). */
export interface ConfigFile {
  /** The path as given, for messages. */
  readonly file: string;
  readonly input: Readonly<Record<string, unknown>>;
}

/**
 * Reads and parses `file`. A file that cannot be read or parsed, or whose top level is not a
 * mapping, throws a ConfigError naming `flag` (`--config`, or its variable); a key that is not
 * written as a flag is named by its path in the file. Values are checked later, by the schema.
 */
export function readConfigFile(file: string, flag = '--config'): ConfigFile {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(flag, `cannot read ${file}: ${firstLine(err)}`);
  }
  const doc = loadYaml().parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  const error = doc.errors[0];
  if (error) {
    const where = error.linePos?.[0] ? ` at line ${error.linePos[0].line}, column ${error.linePos[0].col}` : '';
    // `presence: *` is the likeliest slip: in YAML a bare * starts an alias.
    const hint = /alias/i.test(error.message) ? " (quote a value that starts with * or &: '*')" : '';
    throw new ConfigError(flag, `${file} is not valid YAML${where}: ${firstLine(error.message.replace(/ at line \d+, column \d+.*$/s, ''))}${hint}`);
  }
  const value: unknown = doc.toJS({ maxAliasCount: 100 });
  if (value === null || value === undefined) return { file, input: {} };
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new ConfigError(flag, `${file}: expected a mapping of options (max-payload: 65536, …), got ${Array.isArray(value) ? 'a list' : JSON.stringify(value)}`);
  }
  return { file, input: keyed(value as Record<string, unknown>, file, '') };
}

/** `obj` with its keys (and those of mappings within it) turned from flag names into option keys. */
function keyed(obj: Readonly<Record<string, unknown>>, file: string, at: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(obj)) {
    const path = `${at}${at ? '.' : ''}${name}`;
    if (!FLAG_NAME.test(name)) {
      const hint = toFlag(name) !== name && FLAG_NAME.test(toFlag(name)) ? ` (keys are written as flags: ${toFlag(name)})` : '';
      throw new ConfigError(`${path} in ${file}`, `unknown option${hint}`);
    }
    out[toKey(name)] = convert(value, file, path);
  }
  return out;
}

function convert(value: unknown, file: string, path: string): unknown {
  if (Array.isArray(value)) return value.map((v, i) => convert(v, file, `${path}[${i}]`));
  if (value !== null && typeof value === 'object') return keyed(value as Record<string, unknown>, file, path);
  return value;
}
