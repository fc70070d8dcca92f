/**
 * Presence on Kafka, joins and leaves (brokers/kafka/presence.ts has the whole design): an entry is
 * a record keyed by channel, client and this node's incarnation, written after that incarnation's
 * heartbeat; a leave is its tombstone. Writes that fail while Kafka is away are written again
 * once it is back (the latest per client wins, stores/presence-writes.ts).
 */
import { BusUnavailableError } from '../../errors.js';
import { PresenceWrites } from '../../stores/presence-writes.js';
import type { PresenceEntry } from '../../stores/store.js';
import { storedFields } from '../../stores/presence-entry.js';
import { oneAtATime } from './once.js';
import { unavailable, type PresenceLink } from './presence-session.js';
import { entryKey } from './presence-view.js';

/** What the writer needs of this node's registration (brokers/kafka/presence-sweeper.ts). */
export interface Registration {
  /** The incarnation whose heartbeat was written; undefined while unregistered. */
  readonly registered: () => string | undefined;
  /** Writes a heartbeat, registering an incarnation if there is none. */
  readonly heartbeat: () => Promise<void>;
}

/** This node's clients' entries in the presence topic. */
export class PresenceWriter {
  /** Keys of this node's present clients, per `channel\0client`. */
  private readonly mine = new Map<string, string>();
  /** Per `channel\0client`, the last write asked for (see {@link write}). */
  private readonly inOrder = new Map<string, Promise<unknown>>();
  private readonly writes = new PresenceWrites((channel, client, entry) => this.write(channel, client, entry), unavailable);

  constructor(
    private readonly link: PresenceLink,
    private readonly node: string,
    private readonly registration: Registration,
  ) {}

  join(channel: string, entry: PresenceEntry): Promise<void> {
    return this.writes.join(channel, entry);
  }

  leave(channel: string, client: string): Promise<void> {
    return this.writes.leave(channel, client);
  }

  /** Joins and leaves that failed and wait to be written again. */
  get pending(): number {
    return this.writes.pending;
  }

  /** Writes again the joins and leaves that failed. */
  replay(): void {
    this.writes.replay();
  }

  /** This node's registration is gone: its entries' keys are no longer its own. */
  forget(): void {
    this.mine.clear();
  }

  /**
   * Writes of one client go in the order they were asked (a leave never overtakes the join before
   * it); writes of different clients go concurrently, batched by the send queue.
   */
  private write(channel: string, client: string, entry: PresenceEntry | undefined): Promise<void> {
    const at = `${channel}\0${client}`;
    return oneAtATime(this.inOrder, at, () => this.writeNow(at, channel, client, entry));
  }

  private async writeNow(at: string, channel: string, client: string, entry: PresenceEntry | undefined): Promise<void> {
    const { link } = this;
    if (link.closing) throw new BusUnavailableError('kafka presence store is closed');
    if (!entry) {
      const key = this.mine.get(at);
      if (key === undefined) return;
      await link.whenReady();
      await link.produce([link.record(key, null)]);
      if (this.mine.get(at) === key) this.mine.delete(at);
      return;
    }
    await link.whenReady();
    // Entries go after their incarnation's heartbeat in the log: a view never sees one of a newer incarnation as a leftover.
    if (this.registration.registered() === undefined) await this.registration.heartbeat();
    const inc = this.registration.registered();
    if (inc === undefined) throw new BusUnavailableError('kafka presence: this node is not registered yet');
    const key = entryKey(channel, client, inc);
    await link.produce([link.record(key, { channel, client, ...storedFields(entry), node: this.node, inc })]);
    this.mine.set(at, key);
  }
}
