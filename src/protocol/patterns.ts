/**
 * Channel patterns: a channel name in which `*` matches any run of characters (`:` included).
 * `chat:*` matches `chat:lobby` and `chat:a:b`; `*` matches every channel; a pattern without `*`
 * matches only itself. They come from the JWT `channels` claim and from `--anonymous-subscribe`,
 * `--anonymous-publish` and `--presence`.
 *
 * Matching runs in time linear in the name (no regular expression, no backtracking): with `*` as
 * the only wildcard, taking each literal piece at its leftmost place after the previous one is
 * always right. Patterns are bounded in length and count, so the work per request is bounded too.
 */

/** Longest pattern: a channel name's 200 characters plus as many stars. */
export const MAX_PATTERN_LENGTH = 400;
/** Most patterns in one token's `channels` claim or one flag. */
export const MAX_PATTERNS = 100;

/** Characters of channel names (protocol/decode.ts CHANNEL_NAME) plus `*`. */
const PATTERN = /^[A-Za-z0-9_.:@/=+*-]+$/;

/** Why `patterns` cannot be used (one sentence), or undefined when every one is a valid pattern. */
export function patternsProblem(patterns: readonly string[]): string | undefined {
  if (patterns.length > MAX_PATTERNS) return `at most ${MAX_PATTERNS} patterns, got ${patterns.length}`;
  for (const p of patterns) {
    if (p.length === 0 || p.length > MAX_PATTERN_LENGTH) return `a pattern has 1 to ${MAX_PATTERN_LENGTH} characters, got ${p.length}`;
    if (!PATTERN.test(p)) return `a pattern is made of letters, digits, _ - . : @ / = + and *, got ${JSON.stringify(p.slice(0, 60))}`;
  }
  return undefined;
}

/** A compiled `*` pattern: its literal pieces. */
export interface Glob {
  readonly first: string;
  readonly middle: readonly string[];
  readonly last: string;
  /** Characters the literal pieces need at least. */
  readonly minLength: number;
}

/** Compiles a pattern that contains at least one `*`. */
export function compileGlob(pattern: string): Glob {
  const parts = pattern.split('*');
  const first = parts[0]!;
  const last = parts[parts.length - 1]!;
  const middle = parts.slice(1, -1).filter((p) => p.length > 0);
  return { first, middle, last, minLength: first.length + last.length + middle.reduce((n, p) => n + p.length, 0) };
}

/** True when `name` matches the glob: the first piece is a prefix, the last a suffix, the middle ones appear in order between them. */
export function globMatches(glob: Glob, name: string): boolean {
  if (name.length < glob.minLength || !name.startsWith(glob.first) || !name.endsWith(glob.last)) return false;
  let at = glob.first.length;
  const end = name.length - glob.last.length;
  for (const piece of glob.middle) {
    const found = name.indexOf(piece, at);
    if (found < 0 || found + piece.length > end) return false;
    at = found + piece.length;
  }
  return true;
}
