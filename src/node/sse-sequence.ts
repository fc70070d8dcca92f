/**
 * Exactly-once POSTs for an SSE session (docs/protocol.md, "SSE transport"). A POST whose answer
 * was lost (a relay past its deadline: 503; a proxy's 502 or 504; a cut connection) may or may
 * not have reached the session, so the SDK sends the same batch again with the same `?seq=N`
 * until it gets an answer. The session's node runs each seq once:
 *
 * - `seq` = the last one run + 1: the batch runs, and its verdict is remembered;
 * - `seq` = the last one run: not run again, answered with the remembered verdict;
 * - `seq` below it: a stale copy (a relay that arrived after the SDK had moved on): not run,
 *   answered 204 (nobody waits for that answer);
 * - `seq` past the next one: a batch between them never arrived, so the session's frames have a
 *   hole: refused with 409 `out_of_order`, nothing run (the SDK ends the socket and reconnects).
 *
 * A POST without `seq` (curl, older clients) runs as it comes and leaves the sequence alone.
 * Bounded: one number and one verdict per session, whatever the client sends.
 */
import type { PostVerdict } from './sse-relay.js';

/** The largest seq taken: integers from 1 that JSON and JavaScript carry exactly. */
export const MAX_SEQ = Number.MAX_SAFE_INTEGER;

/** The answer to a seq older than the last one run: it was taken (or superseded) before. */
const TAKEN: PostVerdict = Object.freeze({ status: 204 });

/** A `?seq=` value: a positive integer in decimal without leading zeros, else undefined. */
export function parseSeq(text: string): number | undefined {
  if (!/^[1-9]\d{0,15}$/.test(text)) return undefined;
  const seq = Number(text);
  return seq <= MAX_SEQ ? seq : undefined;
}

/** One session's POST sequence: the last seq run and its verdict. */
export class PostSequence {
  private last = 0;
  private verdict: PostVerdict = TAKEN;

  /** Runs the batch numbered `seq` (see the top of this file) at most once; `run` hands it to the session. */
  take(seq: number | undefined, run: () => PostVerdict): PostVerdict {
    if (seq === undefined) return run();
    if (seq === this.last) return this.verdict;
    if (seq < this.last) return TAKEN;
    if (seq > this.last + 1) {
      return { status: 409, error: 'out_of_order', message: `seq ${seq} skips ahead: the session expected ${this.last + 1} (a batch never arrived); reconnect` };
    }
    const verdict = run();
    this.last = seq;
    this.verdict = verdict;
    return verdict;
  }
}
