/**
 * Revocations in the NATS presence bucket (stores/store.ts, `RevocationStore`): keys
 * `r.<revocation key, base64url>` → the entry as JSON, beside presence's `p.` and `n.` keys (one
 * bucket per --bus-prefix, on the presence store's connection). nats-server 2.9 has no per-key
 * TTL: a list leaves out entries whose `until` passed, and each add purges up to
 * {@link PRUNE_BATCH} of them.
 */
import { parseRevocation, revocationKey, type RevocationEntry, type RevocationStore } from '../../stores/store.js';
import { keyToken, parse, snapshot, unavailable, type PresenceBucket } from './presence-bucket.js';

/** Expired entries one add purges at most. */
const PRUNE_BATCH = 100;
/** Entries a list reads at most. */
export const REVOCATIONS_MAX = 100_000;

export class NatsRevocationStore implements RevocationStore {
  readonly kind = 'nats';

  constructor(private readonly bucket: PresenceBucket) {}

  async add(entry: RevocationEntry): Promise<void> {
    try {
      await this.bucket.call(async (b) => {
        await b.kv.put(`r.${keyToken(revocationKey(entry))}`, JSON.stringify(entry));
        const now = Date.now() / 1000;
        let pruned = 0;
        for (const e of await snapshot(b.kv, 'r.*', REVOCATIONS_MAX)) {
          if (pruned >= PRUNE_BATCH) break;
          const old = parseRevocation(parse(e));
          if (old && old.until > now) continue;
          await b.kv.purge(e.key);
          pruned++;
        }
      });
    } catch (err) {
      throw unavailable(err);
    }
  }

  async list(): Promise<RevocationEntry[]> {
    try {
      return await this.bucket.call(async (b) => {
        const now = Date.now() / 1000;
        const out: RevocationEntry[] = [];
        for (const e of await snapshot(b.kv, 'r.*', REVOCATIONS_MAX)) {
          const entry = parseRevocation(parse(e));
          if (entry && entry.until > now) out.push(entry);
        }
        return out;
      });
    } catch (err) {
      throw unavailable(err);
    }
  }
}
