/**
 * The paging rule every store that holds a channel's messages in order applies to a `limit` read,
 * and the answer of a store whose offsets are log positions (JetStream, Kafka).
 */
import type { ReadOptions, ReadResult, StoredMessage } from './store.js';

export interface PageOptions {
  readonly limit?: number;
  readonly before?: number;
  readonly maxBytes?: number;
}

/**
 * The latest `limit` of `messages` (oldest first) older than `before`, newest first until
 * `maxBytes` of data would be passed (at least one message); `more` when older ones remain.
 */
export function latestPage(messages: readonly StoredMessage[], options: PageOptions): { messages: StoredMessage[]; more: boolean } {
  const limit = options.limit ?? messages.length;
  const maxBytes = options.maxBytes ?? Infinity;
  let end = messages.length;
  if (options.before !== undefined) while (end > 0 && messages[end - 1]!.offset >= options.before) end--;
  let start = end;
  let bytes = 0;
  while (start > 0 && end - start < limit) {
    const size = Buffer.byteLength(messages[start - 1]!.data);
    if (start < end && bytes + size > maxBytes) break;
    bytes += size;
    start--;
  }
  return { messages: messages.slice(start, end), more: limit > 0 && start > 0 };
}

/**
 * A read's answer from what a log store holds of a channel: `all` its retained messages (oldest
 * first), `offset` the channel's position, `complete` the lowest position from which every message
 * after it is in `all`. With `since`: every message after it when the epoch is the same and the
 * gap is covered, else none and `covered: false`. Without: the page asked for, vouching (with
 * `completeAfter`) only for what it holds when it left older messages out.
 */
export function logReadResult(all: readonly StoredMessage[], position: { offset: number; epoch: string; complete: number }, options: ReadOptions): ReadResult {
  const { offset, epoch, complete } = position;
  const since = options.since;
  if (since) {
    const covered = since.epoch === epoch && since.offset <= offset && since.offset >= complete;
    return { offset, epoch, messages: covered ? all.filter((m) => m.offset > since.offset) : [], covered, more: false };
  }
  const page = latestPage(all, options);
  const completeAfterPage = page.messages.length === all.length ? complete : (page.messages[0]?.offset ?? offset + 1) - 1;
  return { offset, epoch, ...page, covered: true, completeAfter: Math.min(completeAfterPage, offset) };
}
