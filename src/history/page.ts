/** The paging rule every store that holds a channel's messages in order applies to a `limit` read. */
import type { StoredMessage } from './store.js';

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
