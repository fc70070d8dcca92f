/**
 * How much a connection's requests may make the node hold: one reply past the budget is cut and
 * says `"more":true`, and the requests in flight of one connection reserve what their replies
 * may take ({@link RequestBudget}).
 */
import type { Client } from '../transport/client.js';

/**
 * Most bytes of one history or presence reply. A history page stops there (the store stops
 * reading) and says `"more":true`; a client pages back with `before` (docs/protocol.md). A
 * presence list is cut there and says `"more":true`.
 */
export const REPLY_BUDGET_BYTES = 256 * 1024;

/** The first of `entries` that fit in `budget` bytes of JSON (at least one). */
export function presenceWithinBudget<T extends { readonly client: string; readonly user: string | null; readonly meta?: unknown }>(entries: readonly T[], budget: number): readonly T[] {
  let bytes = 0;
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i]!;
    bytes += e.client.length + (e.user === null ? 4 : Buffer.byteLength(e.user)) + ENTRY_OVERHEAD;
    if (e.meta !== undefined) bytes += Buffer.byteLength(JSON.stringify(e.meta)) + META_OVERHEAD;
    if (bytes > budget && i > 0) return entries.slice(0, i);
  }
  return entries;
}

/**
 * Bytes each connection's requests in flight may still produce (a history page, a presence
 * list, a recovery until its subscription goes live): reserved when a request starts, given
 * back when it ends. Only connections with something in flight have an entry (a number, no
 * object), so an idle connection costs nothing and nothing needs forgetting when one closes:
 * its requests give back what they reserved as they end.
 */
export class RequestBudget {
  private readonly reserved = new Map<Client, number>();

  /** Bytes `client`'s requests in flight have reserved. */
  inFlight(client: Client): number {
    return this.reserved.get(client) ?? 0;
  }

  reserve(client: Client, bytes: number): void {
    if (bytes > 0) this.reserved.set(client, this.inFlight(client) + bytes);
  }

  /** Gives back `bytes` that {@link reserve} took for `client`. */
  release(client: Client, bytes: number): void {
    if (bytes <= 0) return;
    const left = this.inFlight(client) - bytes;
    if (left > 0) this.reserved.set(client, left);
    else this.reserved.delete(client);
  }

  /** Connections with requests in flight. */
  get size(): number {
    return this.reserved.size;
  }
}

/** JSON around one presence entry (`{"client":…,"user":…},`), counted generously. */
const ENTRY_OVERHEAD = 32;
/** `,"meta":` around an entry's meta. */
const META_OVERHEAD = 8;
