/**
 * Presence on Kafka, liveness (brokers/kafka/presence.ts has the whole design): this node's
 * registration and heartbeats, and the sweep that marks silent nodes dead and removes dead
 * nodes' entries. A node judges others only after it has read the topic without a break for a
 * whole ttl and has read its own latest heartbeat within it, on its own monotonic clock.
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { TIMINGS } from '../../config/defaults.js';
import type { DepartedHandler } from '../../stores/store.js';
import { entryOfView, nodeKey, type ViewEntry } from './presence-view.js';
import type { KafkaPresenceOptions, PresenceLink } from './presence-session.js';
import type { RecordToProduce } from './session.js';

/** Entries of dead nodes removed per sweep, at most: a crash of a node with many clients is cleaned up over several heartbeats. */
export const SWEEP_BATCH = 1000;

/** What the sweeper needs of the joins and leaves: those that failed, to write again once Kafka takes writes. */
export interface PendingWrites {
  readonly pending: () => number;
  readonly replay: () => void;
  /** This node's registration is gone: the keys of its clients' entries are stale. */
  readonly forget: () => void;
}

/** This node's registration (incarnation), its heartbeats, and the sweeps. */
export class PresenceSweeper {
  private timer: NodeJS.Timeout | undefined;
  /** This node's incarnation, and the one whose heartbeat was written (entries may be written under it). */
  private inc: string | undefined;
  private current: string | undefined;
  private registeredOnce = false;
  private heartbeating: Promise<void> | undefined;
  private beating: Promise<void> | undefined;
  /** Entries this node wrote sweep tombstones for that the view has not read back yet. */
  private readonly sweeping = new Set<string>();
  private readonly ttlMs: number;

  constructor(
    private readonly link: PresenceLink,
    private readonly options: KafkaPresenceOptions,
    private readonly writes: PendingWrites,
  ) {
    this.ttlMs = options.ttl * 1000;
  }

  /** The incarnation whose heartbeat was written; undefined while this node is not registered. */
  get registered(): string | undefined {
    return this.current;
  }

  /** Beats now and every --presence-ttl/3. */
  start(): void {
    void this.beat();
    this.timer = setInterval(() => void this.beat(), Math.max(TIMINGS.presenceHeartbeatMinMs, this.ttlMs * TIMINGS.presenceHeartbeatFraction));
    this.timer.unref();
  }

  /** Stops the heartbeats and waits for the one under way. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.beating;
  }

  /** A new session caught up: beat at once (so others see this node live), if started. */
  back(): void {
    if (this.timer) void this.beat();
  }

  /** The view read a tombstone of `key`: a sweep of it is done. */
  removed(key: string): void {
    this.sweeping.delete(key);
  }

  /** The session ended: tombstones not read back may never have been written. */
  ended(): void {
    this.sweeping.clear();
  }

  /** This node's registration is gone (marked dead, swept, or lost by the broker): a new incarnation, then `rejoin`. */
  lostRegistration(): void {
    if (this.current === undefined) return;
    this.inc = undefined;
    this.current = undefined;
    this.writes.forget();
    if (this.timer) void this.beat();
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
  heartbeat(): Promise<void> {
    this.heartbeating ??= (async () => {
      await this.link.whenReady();
      const inc = (this.inc ??= randomBytes(8).toString('hex'));
      await this.link.produce([this.link.record(nodeKey(this.options.node), { inc })]);
      if (this.inc !== inc) return;
      if (this.current !== inc) {
        this.current = inc;
        // Registered again after a sweep took this node for dead: its clients join again.
        if (this.registeredOnce) this.options.rejoin();
        this.registeredOnce = true;
      }
      // Kafka takes writes now: joins and leaves still waiting (a replay that failed again) go too.
      if (this.writes.pending() > 0) this.writes.replay();
    })().finally(() => (this.heartbeating = undefined));
    return this.heartbeating;
  }

  /** Removes this node's leftovers and, on the sweeping node, marks silent nodes dead and removes dead nodes' entries. */
  private async sweep(): Promise<void> {
    const { link, ttlMs } = this;
    const { view } = link;
    const me = this.options.node;
    const inc = this.current;
    const readingSince = link.readingSince;
    if (!link.session || readingSince === undefined || inc === undefined) return;
    const now = performance.now();
    const records: RecordToProduce[] = [];
    const pick = (entries: ViewEntry[]): number => {
      let n = 0;
      for (const e of entries) {
        if (this.sweeping.has(e.key) || records.length >= SWEEP_BATCH) continue;
        this.sweeping.add(e.key);
        records.push(link.record(e.key, null, me));
        n++;
      }
      return n;
    };
    // Entries of this node id from other incarnations: an earlier process, or from before a sweep.
    pick(view.entriesOf(me, inc, SWEEP_BATCH));
    const own = view.nodes.get(me);
    const judging = now - readingSince >= ttlMs && own !== undefined && !own.dead && own.inc === inc && now - own.seenAt <= ttlMs;
    if (judging && this.isSweeper(now)) {
      for (const [node, state] of view.nodes) {
        if (node === me || records.length >= SWEEP_BATCH) continue;
        if (!state.dead) {
          if (now - state.seenAt > ttlMs) records.push(link.record(nodeKey(node), { dead: state.inc }));
          continue;
        }
        const left = view.entriesOf(node, null, SWEEP_BATCH);
        pick(left);
        // Swept clean, and dead long enough that no heartbeat of it is still on its way: its key goes.
        if (left.length === 0 && now - state.seenAt > ttlMs) records.push(link.record(nodeKey(node), null));
      }
      // Entries of a node the view has no heartbeat of (its key went while a late write was on its way).
      for (const [node, seenAt] of view.nodesWithEntries()) {
        if (records.length >= SWEEP_BATCH) break;
        if (!view.nodes.has(node) && now - seenAt > ttlMs) records.push(link.record(nodeKey(node), { dead: null }));
      }
    }
    if (records.length === 0) return;
    try {
      await link.produce(records);
    } catch (err) {
      for (const r of records) this.sweeping.delete(link.keyOf(r));
      throw err;
    }
  }

  /** This node is the live node with the smallest id in its view. */
  private isSweeper(now: number): boolean {
    const me = this.options.node;
    for (const [node, state] of this.link.view.nodes) {
      if (node < me && !state.dead && now - state.seenAt <= this.ttlMs) return false;
    }
    return true;
  }

  /**
   * On close, when registered and caught up: this node's entries go with it (reported departed,
   * as the other stores do), then its key. A failure is logged, not thrown.
   */
  async leave(onDeparted: DepartedHandler): Promise<void> {
    const { link } = this;
    if (!link.session || link.readingSince === undefined || this.current === undefined) return;
    try {
      const entries = link.view.entriesOf(this.options.node, null, 10 * SWEEP_BATCH);
      for (let i = 0; i < entries.length; i += SWEEP_BATCH) {
        const chunk = entries.slice(i, i + SWEEP_BATCH);
        await link.produce(chunk.map((e) => link.record(e.key, null)));
        for (const e of chunk) onDeparted(e.channel, entryOfView(e));
      }
      await link.produce([link.record(nodeKey(this.options.node), null)]);
    } catch (err) {
      this.options.logError(err as Error, 'presence: leaving Kafka failed');
    }
  }
}
