/** How large one reply may grow: replies past the budget are cut and say `"more":true`. */

/**
 * Most bytes of one history or presence reply. A history page stops there (the store stops
 * reading) and says `"more":true`; a client pages back with `before` (docs/protocol.md). A
 * presence list is cut there and says `"more":true`.
 */
export const REPLY_BUDGET_BYTES = 256 * 1024;

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

/** JSON around one presence entry (`{"client":…,"user":…},`), counted generously. */
const ENTRY_OVERHEAD = 32;
