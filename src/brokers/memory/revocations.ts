/**
 * Revocations in process (stores/store.ts, `RevocationStore`): shared by the nodes of one memory
 * broker (or one process's own, with memory history beside another bus). Expired entries are
 * dropped whenever the store is written or read.
 */
import { revocationKey, type RevocationEntry, type RevocationStore } from '../../stores/store.js';

const shared = new WeakMap<object, Map<string, RevocationEntry>>();

export class MemoryRevocationStore implements RevocationStore {
  readonly kind = 'memory';
  private readonly entries: Map<string, RevocationEntry>;

  /** `owner`: the memory broker the cluster shares, or the node itself. */
  constructor(owner: object) {
    let entries = shared.get(owner);
    if (!entries) shared.set(owner, (entries = new Map()));
    this.entries = entries;
  }

  async add(entry: RevocationEntry): Promise<void> {
    this.prune();
    this.entries.set(revocationKey(entry), entry);
  }

  async list(): Promise<RevocationEntry[]> {
    this.prune();
    return [...this.entries.values()];
  }

  private prune(): void {
    const now = Date.now() / 1000;
    for (const [key, entry] of this.entries) if (entry.until <= now) this.entries.delete(key);
  }
}
