/** Reading the files options name (PEM keys and certificates): the config module is the only reader. */
import { readFileSync } from 'node:fs';
import { ConfigError } from '../errors.js';

/** The file's bytes, or a ConfigError naming `flag`. */
export function readPem(file: string, flag: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new ConfigError(flag, `cannot read ${file}: ${firstLine(err)}`);
  }
}

/** An error's first line, so a ConfigError stays one line. */
export function firstLine(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.split('\n')[0] ?? message;
}
