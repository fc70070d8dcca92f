/**
 * Presence in a compacted Kafka topic (docs/brokers.md, "Presence on Kafka"): every node reads the
 * whole topic into an in-memory view (brokers/kafka/presence-view.ts, which lays out the records)
 * and answers presence lists from it; joins, leaves and heartbeats are records it writes.
 *
 * Topic: created if missing with one partition (one log order, the same for every node) and
 * `cleanup.policy=compact`, with segments rolled every {@link SEGMENT_MS} so compaction keeps it to
 * about one record per key. Every key starts with `<--bus-prefix>\0`: clusters with different
 * prefixes can share the topic.
 *
 * Reading: like the bus adapter, a consumer group of its own per session, nothing committed; the
 * view's positions live here. A session is usable once the view has read up to the end offsets
 * read when it opened, and a {@link KafkaPresenceStore.list} first asks the broker for the end
 * offsets and waits until the view has read that far: a list sees every join and leave that was
 * written before it was asked, on any node.
 *
 * Liveness: every node writes `n\0<node>` → `{"inc"}` each --presence-ttl/3, `inc` being a random
 * id of this registration (its incarnation). A node counts another as live while it has read one
 * of its heartbeats within --presence-ttl, measured on its own monotonic clock: no two clocks are
 * compared. (Kafka's LogAppendTime would give broker times, but @platformatic/kafka 1.x reports a
 * record's timestamp as the batch's first timestamp plus the record's delta, which LogAppendTime
 * does not rewrite.) A node judges others only after it has read the topic without a break for a
 * whole ttl and has read its own latest heartbeat within it, so a node that was itself away or
 * behind never takes the others for dead.
 *
 * Sweep (each heartbeat): the live node with the smallest id marks silent nodes dead
 * (`{"dead":inc}`, the first marker of an incarnation in the log counts), then writes tombstones
 * for dead nodes' entries, at most {@link SWEEP_BATCH} per heartbeat, each with the header
 * `swept: <node>`; once a dead node has no entries left, its key gets a tombstone too. Should two
 * nodes sweep at once (their views disagree for a moment), the first tombstone of an entry in the
 * log removes it, and only the view of the node that wrote that one reports the client departed:
 * one report, cluster-wide. A node that reads a marker of its own incarnation (or its own entries
 * swept, or its key removed) registers a new incarnation and calls `rejoin`. A node also removes
 * entries of its own id from other incarnations (an earlier process with the same --node-id).
 *
 * Writes: one produce request in flight at a time (the idempotent producer's bug, brokers/kafka/session.ts).
 * Outage: while Kafka is away, calls wait a moment for a session and reject with
 * BusUnavailableError; joins and leaves that failed are written again once it is back (the latest
 * per client wins, stores/presence-writes.ts): as soon as the new session's view has caught up,
 * however long that takes (a long outage leaves much to read), and again after every heartbeat
 * while any is left (a replay that failed too).
 *
 * Files: this one is the store (lists, start, close); brokers/kafka/presence-session.ts the link
 * to the topic (session, view, waits, writes); brokers/kafka/presence-writer.ts the joins and
 * leaves; brokers/kafka/presence-sweeper.ts the registration, heartbeats and sweeps.
 */
import { performance } from 'node:perf_hooks';
import { BusUnavailableError } from '../../errors.js';
import { revocationKey, type DepartedHandler, type PresenceEntry, type PresenceStore, type RevocationStore } from '../../stores/store.js';
import { entryOfView } from './presence-view.js';
import { OP_TIMEOUT_MS, PresenceLink, type KafkaPresenceOptions } from './presence-session.js';
import { PresenceSweeper } from './presence-sweeper.js';
import { PresenceWriter } from './presence-writer.js';

export { SEGMENT_MS, type KafkaPresenceOptions } from './presence-session.js';
export { SWEEP_BATCH } from './presence-sweeper.js';

/** Expired revocations one add removes at most. */
const PRUNE_BATCH = 100;
/**
 * How long a revocation call waits for a session whose view has caught up: longer than a
 * presence call, since a node reads the revocations once at start, while its first session
 * joins its group (a few seconds), and a revoke is rare and would rather wait than fail.
 */
const REVOCATION_WAIT_MS = 10_000;

/** Clients a presence list returns, at most. */
export const LIST_MAX = 10_000;

export class KafkaPresenceStore implements PresenceStore {
  readonly kind = 'kafka';
  private readonly ttlMs: number;
  private readonly link: PresenceLink;
  private readonly writer: PresenceWriter;
  private readonly sweeper: PresenceSweeper;
  private onDeparted: DepartedHandler = () => {};

  constructor(private readonly options: KafkaPresenceOptions) {
    this.ttlMs = options.ttl * 1000;
    this.link = new PresenceLink(options, {
      changed: (change) => {
        if (change.type === 'departed') this.onDeparted(change.entry.channel, entryOfView(change.entry));
        else if (change.type === 'swept' && change.node === options.node && change.inc === this.sweeper.registered && !this.link.closing) this.sweeper.lostRegistration();
      },
      removed: (key) => this.sweeper.removed(key),
      lost: () => this.sweeper.lostRegistration(),
      // Back: this node beats at once (so others see it live), and what failed meanwhile is written.
      back: () => {
        this.sweeper.back();
        this.writer.replay();
      },
      ended: () => this.sweeper.ended(),
    });
    this.writer = new PresenceWriter(this.link, options.node, {
      registered: () => this.sweeper.registered,
      heartbeat: () => this.sweeper.heartbeat(),
    });
    this.sweeper = new PresenceSweeper(this.link, options, {
      pending: () => this.writer.pending,
      replay: () => this.writer.replay(),
      forget: () => this.writer.forget(),
    });
  }

  join(channel: string, entry: PresenceEntry): Promise<void> {
    return this.writer.join(channel, entry);
  }

  leave(channel: string, client: string): Promise<void> {
    return this.writer.leave(channel, client);
  }

  async list(channel: string): Promise<PresenceEntry[]> {
    if (this.link.closing) throw new BusUnavailableError('kafka presence store is closed');
    await this.link.caughtUp(performance.now() + OP_TIMEOUT_MS);
    const now = performance.now();
    return this.link.view.list(channel, (node, inc) => this.live(node, inc, now), LIST_MAX);
  }

  /** Whether `inc` is the live incarnation of `node`, as this node's view says at local time `now`. */
  private live(node: string, inc: string | null, now: number): boolean {
    const state = this.link.view.nodes.get(node);
    if (!state || state.dead || state.inc !== inc) return false;
    return node === this.options.node ? inc === this.sweeper.registered : now - state.seenAt <= this.ttlMs;
  }

  /**
   * The cluster's revocations in the same topic (`r\0<key>` records, presence-view.ts): an add
   * writes its record and tombstones for up to {@link PRUNE_BATCH} expired ones (compaction then
   * drops them); a list reads the view once it has caught up, as a presence list does.
   */
  readonly revocations: RevocationStore = {
    kind: 'kafka',
    add: async (entry) => {
      await this.link.whenReady(performance.now() + REVOCATION_WAIT_MS);
      const now = Date.now() / 1000;
      const records = [this.link.record(`r\0${revocationKey(entry)}`, entry)];
      for (const [key, old] of this.link.view.revocations) {
        if (records.length > PRUNE_BATCH) break;
        if (old.until <= now) records.push(this.link.record(key, null));
      }
      await this.link.produce(records);
    },
    list: async () => {
      if (this.link.closing) throw new BusUnavailableError('kafka presence store is closed');
      await this.link.caughtUp(performance.now() + REVOCATION_WAIT_MS);
      const now = Date.now() / 1000;
      return [...this.link.view.revocations.values()].filter((entry) => entry.until > now);
    },
  };

  start(onDeparted: DepartedHandler): void {
    this.onDeparted = onDeparted;
    this.link.start();
    this.sweeper.start();
  }

  async close(): Promise<void> {
    if (this.link.closing) return;
    await this.sweeper.stop();
    await this.sweeper.leave(this.onDeparted);
    await this.link.close();
  }
}
