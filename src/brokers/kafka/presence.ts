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
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Admin } from '@platformatic/kafka';
import { loadKafkaClient, type Closable } from './client.js';
import { createTopic, listEnds, openSession, SessionLoop, SharedEnds, SingleFlightProducer, type KafkaRecord, type RecordToProduce, type Session } from './session.js';
import { TIMINGS } from '../../config/defaults.js';
import { BusUnavailableError, errorMessage } from '../../errors.js';
import { entryKey, nodeKey, PresenceView, SWEPT_HEADER, type ViewChange, type ViewEntry } from './presence-view.js';
import { PresenceWrites } from '../../stores/presence-writes.js';
import type { DepartedHandler, PresenceEntry, PresenceStore } from '../../stores/store.js';

/** Entries of dead nodes removed per sweep, at most: a crash of a node with many clients is cleaned up over several heartbeats. */
export const SWEEP_BATCH = 1000;
/** Clients a presence list returns, at most. */
export const LIST_MAX = 10_000;
/** How long a call waits for a session, an answer of the broker, or the view to catch up, before it counts as unavailable. */
const OP_TIMEOUT_MS = 3000;
/** The created topic's segments roll this often, so that the cleaner can compact all but the newest ten minutes. */
export const SEGMENT_MS = 600_000;

export interface KafkaPresenceOptions {
  /** Bootstrap brokers, `host:port`. */
  readonly brokers: readonly string[];
  /** The presence topic, e.g. `<bus topic>-presence`. */
  readonly topic: string;
  /** --bus-prefix: the first part of every key. */
  readonly prefix: string;
  readonly node: string;
  /** Seconds without a heartbeat after which a node's clients leave. */
  readonly ttl: number;
  readonly logError: (err: Error, what: string) => void;
  /** Says once what an operator should change (an existing topic that is not compacted). */
  readonly warn: (line: string) => void;
  /** Called when this node was swept as dead (e.g. Kafka was away) and must register its clients again. */
  readonly rejoin: () => void;
}

type Record_ = RecordToProduce;

function unavailable(err: unknown): BusUnavailableError {
  return err instanceof BusUnavailableError ? err : new BusUnavailableError(`kafka presence: ${errorMessage(err)}`, { cause: err });
}

export class KafkaPresenceStore implements PresenceStore {
  readonly kind = 'kafka';
  private readonly view: PresenceView;
  private readonly keyPrefix: string;
  private readonly ttlMs: number;
  private readonly id = `fanout-presence-${randomBytes(8).toString('hex')}`;
  private sessions = 0;
  private session: Session | undefined;
  /** Per partition, the offset of the next record to read; undefined until the first session. */
  private positions: Map<number, bigint> | undefined;
  /** The end offsets the current session must read up to before it is used. */
  private target: bigint[] = [];
  /** Local time from which the current session has read the topic up to its end. */
  private readingSince: number | undefined;
  private readonly waiters = new Set<() => void>();
  private readonly loop = new SessionLoop({
    label: 'kafka presence',
    open: (clients) => this.open(clients),
    live: (session) => this.hold(session),
    failed: (err, during) => this.options.logError(err, during === 'open' ? 'presence: Kafka not reachable; retrying' : 'presence: Kafka session ended; reconnecting'),
  });
  private readonly producer = new SingleFlightProducer({
    session: () => this.session,
    unavailable: () => new BusUnavailableError('kafka presence: not connected to Kafka'),
    full: (waiting) => new BusUnavailableError(`kafka presence has ${waiting} records waiting for the broker`),
    failed: unavailable,
  });
  private onDeparted: DepartedHandler = () => {};
  private timer: NodeJS.Timeout | undefined;
  /** This node's incarnation, and the one whose heartbeat was written (entries may be written under it). */
  private inc: string | undefined;
  private registered: string | undefined;
  private registeredOnce = false;
  private heartbeating: Promise<void> | undefined;
  private beating: Promise<void> | undefined;
  /** Keys of this node's present clients, per `channel\0client`. */
  private readonly mine = new Map<string, string>();
  /** Entries this node wrote sweep tombstones for that the view has not read back yet. */
  private readonly sweeping = new Set<string>();
  /** Per `channel\0client`, the last write asked for (see {@link write}). */
  private readonly inOrder = new Map<string, Promise<void>>();
  private warned = false;
  private readonly ends = new SharedEnds();
  private readonly writes = new PresenceWrites((channel, client, entry) => this.write(channel, client, entry), unavailable);

  constructor(private readonly options: KafkaPresenceOptions) {
    this.view = new PresenceView(options.node);
    this.keyPrefix = `${options.prefix}\0`;
    this.ttlMs = options.ttl * 1000;
  }

  // ---- sessions -------------------------------------------------------------------------------

  private ensureRunning(): void {
    this.loop.start();
  }

  private get closing(): boolean {
    return this.loop.closing;
  }

  /** Holds a session until it fails. */
  private async hold(session: Session): Promise<{ cause: Error; usable: boolean }> {
    this.session = session;
    this.wake();
    // Back: once the view has caught up (no deadline: the calls' 3 s is for callers who wait, and
    // a long outage can leave more to read), this node beats at once (so others see it live),
    // and what failed meanwhile is written. Rejects only when the store closes.
    void this.until(() => this.session !== session || this.readingSince !== undefined, 'closed', Infinity).then(() => {
      if (this.session !== session) return;
      if (this.timer) void this.beat();
      this.writes.replay();
    }, () => {});
    const cause = await session.ended;
    this.session = undefined;
    this.readingSince = undefined;
    this.sweeping.clear();
    this.wake();
    return { cause, usable: true };
  }

  /** A session on the presence topic, read from the kept positions (the whole topic at first), with a consumer group of its own. */
  private async open(clients: Closable[]): Promise<Session> {
    const { brokers, topic } = this.options;
    const session = await openSession(
      {
        label: 'kafka presence',
        brokers,
        topic,
        clientId: this.id,
        groupId: `${this.id}-${++this.sessions}`,
        ensureTopic: (admin) => this.ensureTopic(admin),
        fallbackMode: 'earliest',
        positions: async (_consumer, _shape, ends) => {
          // The log is shorter than what this node read: the broker lost it (or the topic was made
          // again). Everything is read again, and this node's clients join again.
          if (this.positions && ends.some((end, p) => end < (this.positions!.get(p) ?? 0n))) {
            this.positions = undefined;
            this.view.clear();
            this.sweptMyself();
          }
          const positions = this.positions ?? new Map<number, bigint>();
          ends.forEach((_, p) => {
            if (!positions.has(p)) positions.set(p, 0n);
          });
          return positions;
        },
        started: (positions, ends) => {
          this.positions = positions;
          this.target = [...ends];
        },
        onRecord: (positions, message) => this.read(positions, message),
      },
      clients,
    );
    this.checkCaughtUp();
    return session;
  }

  /** Creates the topic (one partition, compacted) unless it exists; warns once when an existing one is not compacted. */
  private async ensureTopic(admin: Admin): Promise<void> {
    const { topic } = this.options;
    const configs = [
      { name: 'cleanup.policy', value: 'compact' },
      { name: 'segment.ms', value: String(SEGMENT_MS) },
      { name: 'min.cleanable.dirty.ratio', value: '0.1' },
    ];
    if ((await createTopic(admin, topic, { partitions: 1, configs })) || this.warned) return;
    const { ConfigResourceTypes } = await loadKafkaClient();
    const [described] = await admin.describeConfigs({ resources: [{ resourceType: ConfigResourceTypes.TOPIC, resourceName: topic, configurationKeys: ['cleanup.policy'] }] });
    const policy = described?.configs.find((c) => c.name === 'cleanup.policy')?.value ?? '';
    if (!policy.split(',').includes('compact')) {
      this.warned = true;
      this.options.warn(`the Kafka presence topic ${topic} has cleanup.policy=${policy}, not compact: every node reads all of it at start, so it keeps growing; set cleanup.policy=compact on it`);
    }
  }

  /** Applies one record to the view and acts on what it changed. */
  private read(positions: Map<number, bigint>, message: KafkaRecord): void {
    if (this.closing || (positions.get(message.partition) ?? 0n) > message.offset) return;
    positions.set(message.partition, message.offset + 1n);
    const raw = message.key?.toString('utf8');
    if (raw?.startsWith(this.keyPrefix)) {
      const key = raw.slice(this.keyPrefix.length);
      const value = message.value ?? null;
      if (value === null) this.sweeping.delete(key);
      this.changed(this.view.apply(key, value, header(message.headers, SWEPT_HEADER), performance.now()));
    }
    this.checkCaughtUp();
    this.wake();
  }

  private changed(change: ViewChange): void {
    if (!change) return;
    if (change.type === 'departed') this.onDeparted(change.entry.channel, { client: change.entry.client, user: change.entry.user });
    else if (change.type === 'swept' && change.node === this.options.node && change.inc === this.registered && !this.closing) this.sweptMyself();
  }

  /** This node's registration is gone (marked dead, swept, or lost by the broker): a new incarnation, then `rejoin`. */
  private sweptMyself(): void {
    if (this.registered === undefined) return;
    this.inc = undefined;
    this.registered = undefined;
    this.mine.clear();
    if (this.timer) void this.beat();
  }

  private checkCaughtUp(): void {
    if (this.readingSince !== undefined || !this.positions) return;
    if (this.target.every((end, p) => (this.positions!.get(p) ?? 0n) >= end)) this.readingSince = performance.now();
  }

  private wake(): void {
    const waiters = [...this.waiters];
    this.waiters.clear();
    for (const w of waiters) w();
  }

  /** Waits until `ok()` holds, re-checked on every change, for up to {@link OP_TIMEOUT_MS}. */
  private async until(ok: () => boolean, what: string, deadline = performance.now() + OP_TIMEOUT_MS): Promise<void> {
    while (!ok()) {
      if (this.closing) throw new BusUnavailableError('kafka presence store is closed');
      const left = deadline - performance.now();
      if (left <= 0) throw new BusUnavailableError(`kafka presence: ${what}`);
      await new Promise<void>((resolve) => {
        // No deadline: only a change wakes it (a timer past 2^31 ms would fire at once).
        const timer = Number.isFinite(left) ? setTimeout(done, left) : undefined;
        function done(): void {
          clearTimeout(timer);
          resolve();
        }
        this.waiters.add(done);
      });
    }
  }

  /** A session whose view has read the topic up to where it was when the session opened. */
  private async whenReady(deadline?: number): Promise<Session> {
    this.ensureRunning();
    await this.until(() => this.session !== undefined && this.readingSince !== undefined, 'not connected to Kafka', deadline);
    return this.session!;
  }

  /** The topic's end offsets now: one request in flight, and calls that come meanwhile share the next one. */
  private latestEnds(session: Session): Promise<readonly bigint[]> {
    return this.ends.latest(() => within(listEnds(session.consumer, this.options.topic), 'the broker did not say the end of the presence topic'));
  }

  // ---- writing --------------------------------------------------------------------------------

  /** Produces the records, in order, one request in flight; resolves once the broker has them all. */
  private produce(records: Record_[]): Promise<void> {
    return within(this.producer.send(records).then(() => {}), 'the broker did not take the write in time');
  }

  private record(key: string, value: unknown, sweptBy?: string): Record_ {
    return {
      topic: this.options.topic,
      partition: 0,
      key: Buffer.from(this.keyPrefix + key, 'utf8'),
      value: value === null ? (null as unknown as Buffer) : Buffer.from(JSON.stringify(value), 'utf8'),
      ...(sweptBy !== undefined ? { headers: new Map([[Buffer.from(SWEPT_HEADER), Buffer.from(sweptBy, 'utf8')]]) } : {}),
    };
  }

  join(channel: string, entry: PresenceEntry): Promise<void> {
    return this.writes.join(channel, entry);
  }

  leave(channel: string, client: string): Promise<void> {
    return this.writes.leave(channel, client);
  }

  /**
   * Writes of one client go in the order they were asked (a leave never overtakes the join before
   * it); writes of different clients go concurrently, batched by the send queue.
   */
  private write(channel: string, client: string, entry: PresenceEntry | undefined): Promise<void> {
    const at = `${channel}\0${client}`;
    const next = (this.inOrder.get(at) ?? Promise.resolve()).then(() => this.writeNow(at, channel, client, entry));
    const tail = next.catch(() => {});
    this.inOrder.set(at, tail);
    void tail.then(() => {
      if (this.inOrder.get(at) === tail) this.inOrder.delete(at);
    });
    return next;
  }

  private async writeNow(at: string, channel: string, client: string, entry: PresenceEntry | undefined): Promise<void> {
    if (this.closing) throw new BusUnavailableError('kafka presence store is closed');
    if (!entry) {
      const key = this.mine.get(at);
      if (key === undefined) return;
      await this.whenReady();
      await this.produce([this.record(key, null)]);
      if (this.mine.get(at) === key) this.mine.delete(at);
      return;
    }
    await this.whenReady();
    // Entries go after their incarnation's heartbeat in the log: a view never sees one of a newer incarnation as a leftover.
    if (this.registered === undefined) await this.heartbeat();
    const inc = this.registered;
    if (inc === undefined) throw new BusUnavailableError('kafka presence: this node is not registered yet');
    const key = entryKey(channel, client, inc);
    await this.produce([this.record(key, { channel, client, user: entry.user, node: this.options.node, inc })]);
    this.mine.set(at, key);
  }

  // ---- reading --------------------------------------------------------------------------------

  async list(channel: string): Promise<PresenceEntry[]> {
    if (this.closing) throw new BusUnavailableError('kafka presence store is closed');
    const deadline = performance.now() + OP_TIMEOUT_MS;
    const session = await this.whenReady(deadline);
    const ends = await this.latestEnds(session);
    await this.until(() => this.session === session && ends.every((end, p) => (this.positions?.get(p) ?? 0n) >= end), 'the presence view did not catch up in time', deadline);
    const now = performance.now();
    return this.view.list(channel, (node, inc) => this.live(node, inc, now), LIST_MAX);
  }

  /** Whether `inc` is the live incarnation of `node`, as this node's view says at local time `now`. */
  private live(node: string, inc: string | null, now: number): boolean {
    const state = this.view.nodes.get(node);
    if (!state || state.dead || state.inc !== inc) return false;
    return node === this.options.node ? inc === this.registered : now - state.seenAt <= this.ttlMs;
  }

  // ---- heartbeats and sweeps ------------------------------------------------------------------

  start(onDeparted: DepartedHandler): void {
    this.onDeparted = onDeparted;
    this.ensureRunning();
    void this.beat();
    this.timer = setInterval(() => void this.beat(), Math.max(TIMINGS.presenceHeartbeatMinMs, this.ttlMs * TIMINGS.presenceHeartbeatFraction));
    this.timer.unref();
  }

  /** One heartbeat and sweep at a time; a call while one runs waits for it. */
  private beat(): Promise<void> {
    this.beating ??= this.heartbeat()
      .then(() => this.sweep())
      .catch((err: unknown) => this.options.logError(err as Error, 'presence heartbeat failed'))
      .finally(() => (this.beating = undefined));
    return this.beating;
  }

  /** Writes this node's heartbeat (registering a new incarnation if it has none); one at a time. */
  private heartbeat(): Promise<void> {
    this.heartbeating ??= (async () => {
      await this.whenReady();
      const inc = (this.inc ??= randomBytes(8).toString('hex'));
      await this.produce([this.record(nodeKey(this.options.node), { inc })]);
      if (this.inc !== inc) return;
      if (this.registered !== inc) {
        this.registered = inc;
        // Registered again after a sweep took this node for dead: its clients join again.
        if (this.registeredOnce) this.options.rejoin();
        this.registeredOnce = true;
      }
      // Kafka takes writes now: joins and leaves still waiting (a replay that failed again) go too.
      if (this.writes.pending > 0) this.writes.replay();
    })().finally(() => (this.heartbeating = undefined));
    return this.heartbeating;
  }

  /** Removes this node's leftovers and, on the sweeping node, marks silent nodes dead and removes dead nodes' entries. */
  private async sweep(): Promise<void> {
    const me = this.options.node;
    const inc = this.registered;
    if (!this.session || this.readingSince === undefined || inc === undefined) return;
    const now = performance.now();
    const records: Record_[] = [];
    const pick = (entries: ViewEntry[]): number => {
      let n = 0;
      for (const e of entries) {
        if (this.sweeping.has(e.key) || records.length >= SWEEP_BATCH) continue;
        this.sweeping.add(e.key);
        records.push(this.record(e.key, null, me));
        n++;
      }
      return n;
    };
    // Entries of this node id from other incarnations: an earlier process, or from before a sweep.
    pick(this.view.entriesOf(me, inc, SWEEP_BATCH));
    const own = this.view.nodes.get(me);
    const judging = now - this.readingSince >= this.ttlMs && own !== undefined && !own.dead && own.inc === inc && now - own.seenAt <= this.ttlMs;
    if (judging && this.isSweeper(now)) {
      for (const [node, state] of this.view.nodes) {
        if (node === me || records.length >= SWEEP_BATCH) continue;
        if (!state.dead) {
          if (now - state.seenAt > this.ttlMs) records.push(this.record(nodeKey(node), { dead: state.inc }));
          continue;
        }
        const left = this.view.entriesOf(node, null, SWEEP_BATCH);
        pick(left);
        // Swept clean, and dead long enough that no heartbeat of it is still on its way: its key goes.
        if (left.length === 0 && now - state.seenAt > this.ttlMs) records.push(this.record(nodeKey(node), null));
      }
      // Entries of a node the view has no heartbeat of (its key went while a late write was on its way).
      for (const [node, seenAt] of this.view.nodesWithEntries()) {
        if (records.length >= SWEEP_BATCH) break;
        if (!this.view.nodes.has(node) && now - seenAt > this.ttlMs) records.push(this.record(nodeKey(node), { dead: null }));
      }
    }
    if (records.length === 0) return;
    try {
      await this.produce(records);
    } catch (err) {
      for (const r of records) this.sweeping.delete(r.key!.toString('utf8').slice(this.keyPrefix.length));
      throw err;
    }
  }

  /** This node is the live node with the smallest id in its view. */
  private isSweeper(now: number): boolean {
    const me = this.options.node;
    for (const [node, state] of this.view.nodes) {
      if (node < me && !state.dead && now - state.seenAt <= this.ttlMs) return false;
    }
    return true;
  }

  // ---- close ----------------------------------------------------------------------------------

  async close(): Promise<void> {
    if (this.closing) return;
    clearInterval(this.timer);
    this.timer = undefined;
    await this.beating;
    if (this.session && this.readingSince !== undefined && this.registered !== undefined) {
      // This node's entries go with it (reported departed, as the other stores do), then its key.
      try {
        const entries = this.view.entriesOf(this.options.node, null, 10 * SWEEP_BATCH);
        for (let i = 0; i < entries.length; i += SWEEP_BATCH) {
          const chunk = entries.slice(i, i + SWEEP_BATCH);
          await this.produce(chunk.map((e) => this.record(e.key, null)));
          for (const e of chunk) this.onDeparted(e.channel, { client: e.client, user: e.user });
        }
        await this.produce([this.record(nodeKey(this.options.node), null)]);
      } catch (err) {
        this.options.logError(err as Error, 'presence: leaving Kafka failed');
      }
    }
    this.loop.stop();
    this.wake();
    const session = this.session;
    this.session = undefined;
    this.producer.rejectAll(new BusUnavailableError('kafka presence store is closed'));
    await this.loop.closed(session);
  }
}

/** `promise`, or a BusUnavailableError saying `what` after {@link OP_TIMEOUT_MS}. */
function within<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new BusUnavailableError(`kafka presence: ${what}`)), OP_TIMEOUT_MS);
  });
  return Promise.race([promise, timeout]).catch((err: unknown) => {
    throw unavailable(err);
  }).finally(() => clearTimeout(timer));
}

function header(headers: Map<Buffer, Buffer> | undefined, name: string): string | undefined {
  for (const [k, v] of headers ?? []) if (k.toString('utf8') === name) return v.toString('utf8');
  return undefined;
}

