/** How large one reply may grow: replies past the budget are cut and say `"more":true`. */

/**
 * Most bytes of one history or presence reply. Longer answers are cut, oldest messages first, and
 * say `"more":true`; a client pages back with `before` (docs/protocol.md).
 */
export const REPLY_BUDGET_BYTES = 256 * 1024;

/** The newest of `messages` whose data fit in `budget` bytes (at least one), oldest first. */
export function withinBudget<T extends { readonly data: string }>(messages: readonly T[], budget: number): readonly T[] {
  let bytes = 0;
  let i = messages.length;
  while (i > 0) {
    bytes += Buffer.byteLength(messages[i - 1]!.data) + ENTRY_OVERHEAD;
    if (bytes > budget && i < messages.length) break;
    i--;
  }
  return i === 0 ? messages : messages.slice(i);
}

/** The first of `entries` that fit in `budget` bytes of JSON (at least one). */
export function presenceWithinBudget<T extends { readonly client: string; readonly user: string | null }>(entries: readonly T[], budget: number): readonly T[] {
  let bytes = 0;
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i]!;
    bytes += e.client.length + (e.user === null ? 4 : Buffer.byteLength(e.user)) + ENTRY_OVERHEAD;
    if (bytes > budget && i > 0) return entries.slice(0, i);
  }
  return entries;
}

/** JSON around one history entry or presence entry (`{"offset":…,"data":…},`), counted generously. */
const ENTRY_OVERHEAD = 32;
