/**
 * The node's copy of the cluster's revocations (docs/auth.md, "Revocation"), so an upgrade is
 * checked against it with two map lookups and no store round trip. It is fed by the revocation
 * store (read whole when the node starts, when its bus comes back and every
 * {@link REVOCATION_RELOAD_MS}) and by the bus (each revoke call reaches every node at once).
 * Entries leave by themselves when their `until` passes: checked at each lookup, and pruned on
 * each reload.
 */
import type { RevocationEntry } from '../stores/store.js';
import type { Identity } from '../transport/client.js';

/** How often the copy is read again from the store, besides the bus (a node that missed a call catches up). */
export const REVOCATION_RELOAD_MS = 30_000;

export class Revocations {
  /** `until` (unix seconds) by token id. */
  private readonly tokens = new Map<string, number>();
  /** `issuedBefore` and `until` (unix seconds) by user. */
  private readonly users = new Map<string, { readonly issuedBefore: number; readonly until: number }>();

  get size(): number {
    return this.tokens.size + this.users.size;
  }

  /** Takes an entry (the latest for its key wins, as in the store). */
  add(entry: RevocationEntry): void {
    if (entry.kind === 'token') this.tokens.set(entry.id, entry.until);
    else this.users.set(entry.id, { issuedBefore: entry.issuedBefore, until: entry.until });
  }

  /** Replaces the copy with the store's list, keeping what the bus brought meanwhile when it is not in the list yet. */
  load(entries: readonly RevocationEntry[], now = Date.now()): void {
    for (const entry of entries) this.add(entry);
    this.prune(now);
  }

  /** True when `identity`'s token is revoked: its `jti` is, or its user's tokens issued before its `iat` are. */
  revoked(identity: Pick<Identity, 'user' | 'tokenId' | 'issuedAt'>, now = Date.now()): boolean {
    const seconds = now / 1000;
    if (identity.tokenId !== undefined) {
      const until = this.tokens.get(identity.tokenId);
      if (until !== undefined && until > seconds) return true;
    }
    if (identity.user !== undefined && identity.issuedAt !== undefined) {
      const entry = this.users.get(identity.user);
      if (entry && entry.until > seconds && identity.issuedAt < entry.issuedBefore) return true;
    }
    return false;
  }

  /** Drops entries whose `until` passed. */
  prune(now = Date.now()): void {
    const seconds = now / 1000;
    for (const [id, until] of this.tokens) if (until <= seconds) this.tokens.delete(id);
    for (const [id, entry] of this.users) if (entry.until <= seconds) this.users.delete(id);
  }
}
