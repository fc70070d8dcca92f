/**
 * A presence entry's fields as every presence store keeps them beside its own (node, incarnation):
 * the client's `user` and, when its connection has one, its `meta` (the connect hook's `meta`,
 * docs/hooks.md): what presence lists and `join`/`leave` events show, so that a page can put a
 * display name on each client. One place reads them back, whatever the broker.
 */
import type { Json } from '../protocol/frames.js';
import type { PresenceEntry } from './store.js';

/** `user` and `meta` of `entry`, for a store's record (meta left out when the entry has none). */
export function storedFields(entry: PresenceEntry): { user: string | null; meta?: Json } {
  return entry.meta === undefined ? { user: entry.user } : { user: entry.user, meta: entry.meta };
}

/** The entry of `client` from a record a store read back (anything but a plain object gives no user, no meta). */
export function entryFrom(client: string, record: unknown): PresenceEntry {
  const { user, meta } = (typeof record === 'object' && record !== null ? record : {}) as { user?: unknown; meta?: unknown };
  const entry = { client, user: typeof user === 'string' ? user : null };
  return typeof meta === 'object' && meta !== null && !Array.isArray(meta) ? { ...entry, meta: meta as Json } : entry;
}
