/**
 * The kinds of option values, shared by the serve options and the namespace options. Values come
 * from three places: flags and environment variables (always strings), a config file (YAML's
 * numbers, booleans, strings and lists) and `createConfig` (JavaScript values). Each kind takes
 * exactly what its input type says and nothing else: a number option takes a number or a string
 * that is one, never an array or a boolean (zod's coercion alone would turn `[5]` into 5 and
 * `true` into 1); a list takes a comma-separated string or an array of strings.
 */
import { z } from 'zod';
import { ConfigError } from '../errors.js';
import { patternsProblem } from '../protocol/patterns.js';

/** A number or a string holding one: `message` answers both a wrong type and a string that is no number. */
const numeric = (message: string) =>
  z.union([z.number(), z.string()], { error: message }).pipe(
    z.coerce.number<string | number>({ error: message }).refine((n) => Number.isFinite(n), { error: message }),
  );

/** A whole number from `min` to `max`. */
export const int = (min: number, max = Number.MAX_SAFE_INTEGER) =>
  z
    .union([z.number(), z.string()], { error: 'expected a number' })
    .pipe(
      z.coerce
        .number<string | number>({ error: 'expected a number' })
        .int({ error: 'expected a whole number' })
        .min(min, { error: `expected at least ${min}` })
        .max(max, { error: `expected at most ${max}` }),
    );

/** A number of seconds, 0 or more (fractions allowed). */
export const seconds = () => numeric('expected a number of seconds').pipe(z.number().min(0, { error: 'expected 0 or more seconds' }));

/** A number `message` describes, refined by the caller (`.min`, `.gt`, …). */
export const number = (message: string) => numeric(message).pipe(z.number());

/** A list: a comma-separated string (flags, env) or an array of strings (a file, code); entries trimmed, empty ones dropped. */
export const list = () =>
  z
    .union([z.string(), z.array(z.string())], { error: 'expected a comma-separated string or a list of strings' })
    .transform((value) =>
      (Array.isArray(value) ? value : value.split(','))
        .map((x) => x.trim())
        .filter((x) => x.length > 0),
    );

/** Channel patterns (protocol/patterns.ts): bounded in count and length, channel-name characters and `*`. */
export const patterns = () =>
  list().superRefine((value, ctx) => {
    const problem = patternsProblem(value);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  });

/** One channel pattern, as in {@link patterns}. */
export const pattern = () =>
  z.string({ error: (issue) => (issue.input === undefined ? 'required: a channel pattern such as chat:*' : 'expected a channel pattern such as chat:*') }).superRefine((value, ctx) => {
    const problem = patternsProblem([value]);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  });

/** A back-end hook's address (--connect-hook, …): the node POSTs JSON to it over HTTP(S). */
export const hookUrl = () => z.url({ protocol: /^https?$/, error: 'expected an http:// or https:// URL' });

/**
 * A string option parsed by `parse`, which throws a ConfigError for a value it cannot use; its
 * reason becomes the zod issue, so the message names the flag (and the variable) like any other.
 */
export const parsedWith =
  <I, T>(parse: (value: I) => T) =>
  (value: I, ctx: z.RefinementCtx<I>): T => {
    try {
      return parse(value);
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      ctx.addIssue({ code: 'custom', message: err.reason });
      return z.NEVER;
    }
  };

/**
 * zod's own words for a value of the wrong type ("Invalid input: expected string, received
 * array"), in the words of the other messages: the caller appends what was given.
 */
export function typeMessage(issue: z.core.$ZodRawIssue): string | undefined {
  if (issue.code !== 'invalid_type') return undefined;
  const expected = String(issue.expected);
  const article = /^[aeiou]/.test(expected) ? 'an' : 'a';
  return expected === 'undefined' ? 'expected nothing here' : `expected ${article} ${expected}`;
}
