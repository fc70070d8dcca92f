/**
 * The back end's reason for a refusal, as a client may read it: a hook that answers 401 or 403
 * with `{"reason":"…"}` has that text put into the client's `forbidden` error (or the refused
 * upgrade's answer). It comes from another program and goes to people's screens and to logs, so
 * it is cut to {@link MAX_REASON_LENGTH} characters and cleaned of what could forge a line or
 * reorder text: control characters (C0, DEL, C1, line and paragraph separators) and bidirectional
 * overrides become spaces, runs of white space become one. Anything else about the answer (a
 * `reason` that is not a string, a body that is not JSON) gives no reason: the default text stays.
 */

/** Longest reason passed on, in characters (code points); a longer one is cut and ends with "…". */
export const MAX_REASON_LENGTH = 200;

// Control characters, line/paragraph separators and bidi embeddings, overrides and isolates.
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]/g;

/** The cleaned `reason` of a refusal's body, or undefined when it has none worth showing. */
export function refusalReason(body: string): string | undefined {
  if (body.trim() === '') return undefined;
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const reason = (value as Record<string, unknown>)['reason'];
  return typeof reason === 'string' ? cleanReason(reason) : undefined;
}

/** `text` without control or bidi characters, white space collapsed, at most {@link MAX_REASON_LENGTH} characters; undefined when nothing is left. */
export function cleanReason(text: string): string | undefined {
  const clean = text.replace(UNSAFE, ' ').replace(/\s+/g, ' ').trim();
  if (clean === '') return undefined;
  const chars = [...clean];
  return chars.length <= MAX_REASON_LENGTH ? clean : chars.slice(0, MAX_REASON_LENGTH - 1).join('').trimEnd() + '…';
}
