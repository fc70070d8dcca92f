/**
 * Presence in a NATS JetStream key-value bucket (`--history nats://…`), one bucket per
 * --bus-prefix, each key keeping its last value only (history 1).
 *
 * Keys, every part base64url-encoded (KV keys allow `[-/_=.A-Za-z0-9]`, dots separating tokens):
 * - `p.<channel>.<client>.<node>` → `{"user","inc"}`: a present client, `inc` being the
 *   incarnation of its node when it joined;
 * - `n.<node>` → `{}` while the node lives, `{"dead":R}` once a sweeper found it silent.
 *
 * Liveness. nats-server 2.9 has no per-key TTL, so every node rewrites its `n.` key each
 * --presence-ttl/3 with a compare-and-set on its last revision, and ages are read from the
 * server's own timestamps (the `created` of each entry, compared with the server time of this
 * node's own latest write): no clock of ours is trusted. The revision of the write that
 * registered a node is its incarnation.
 *
 * Sweep (each heartbeat, any live node): a node whose `n.` entry is older than --presence-ttl is
 * first marked `{"dead":R}` by compare-and-set at its revision R (one sweeper wins; the dead node,
 * should it come back, sees its own compare-and-set fail and registers again with a newer
 * incarnation, then rejoins its clients). Then its entries of incarnation ≤ R are removed by
 * stream sequence (`deleteMessage`), which succeeds for exactly one caller: only that sweeper
 * reports the client as departed, however many nodes sweep. At most {@link SWEEP_BATCH} entries
 * per sweep; the marker goes when none are left. Removal by sequence leaves no tombstone.
 *
 * Outage: the store has a connection of its own, opened on first use; while it is down, calls wait a moment for it
 * and then reject with BusUnavailableError. Joins and leaves that could not be written are
 * replayed on reconnect (the latest per client wins), like the Redis store.
 */
import type { NatsAddress } from '../../config/bus-address.js';
import { TIMINGS } from '../../config/defaults.js';
import { BusUnavailableError } from '../../errors.js';
import type { DepartedHandler, PresenceEntry, PresenceStore, SweptPresenceOptions } from '../../stores/store.js';
import { PresenceWrites } from '../../stores/presence-writes.js';
import { entryFrom, storedFields } from '../../stores/presence-entry.js';
import { NatsRevocationStore } from './revocations.js';
import { apiCode, fromToken, keyToken, NO_MESSAGE_FOUND, parse, PresenceBucket, snapshot, unavailable, WRONG_LAST_SEQUENCE, type Bucket } from './presence-bucket.js';

export { bucketName, keyToken } from './presence-bucket.js';

/** Entries of dead nodes removed per sweep, at most: a crash of a node with many clients is cleaned up over several heartbeats. */
export const SWEEP_BATCH = 1000;
/** Clients a presence list reads, at most. */
export const LIST_MAX = 10_000;

export interface NatsPresenceOptions extends SweptPresenceOptions {
  readonly address: NatsAddress;
}

export class NatsPresenceStore implements PresenceStore {
  readonly kind = 'nats';
  private readonly bucket: PresenceBucket;
  /** The cluster's revocations, in the same bucket (revocations.ts). */
  readonly revocations: NatsRevocationStore;
  private closing = false;
  private onDeparted: DepartedHandler = () => {};
  private timer: NodeJS.Timeout | undefined;
  /** The revision of the write that registered this node, and of its latest heartbeat. */
  private inc: number | undefined;
  private rev: number | undefined;
  /** Server time minus local time, as of this node's latest heartbeat. */
  private skewMs = 0;
  private beating: Promise<void> | undefined;
  private leftovers = true;
  private readonly me: string;
  /** Joins and leaves that could not be written (NATS away), replayed when it is back. */
  private readonly writes = new PresenceWrites((channel, client, entry) => this.write(channel, client, entry), unavailable);

  constructor(private readonly options: NatsPresenceOptions) {
    this.me = keyToken(options.node);
    this.bucket = new PresenceBucket({
      address: options.address,
      prefix: options.prefix,
      logError: options.logError,
      warn: options.warn,
      // NATS is back: joins and leaves that failed meanwhile are written, and the node beats at once.
      onConnected: (reconnect) => {
        this.writes.replay();
        if (reconnect || this.timer) void this.beat();
      },
    });
    this.revocations = new NatsRevocationStore(this.bucket);
  }

  join(channel: string, entry: PresenceEntry): Promise<void> {
    return this.writes.join(channel, entry);
  }

  leave(channel: string, client: string): Promise<void> {
    return this.writes.leave(channel, client);
  }


  private entryKey(channel: string, client: string): string {
    return `p.${keyToken(channel)}.${keyToken(client)}.${this.me}`;
  }

  private async write(channel: string, client: string, entry: PresenceEntry | undefined): Promise<void> {
    const key = this.entryKey(channel, client);
    if (!entry) {
      // A purge of the key's subject leaves nothing behind (a KV delete would leave a marker per client forever).
      await this.bucket.call((b) => b.jsm.streams.purge(b.stream, { filter: b.subject(key) }));
      return;
    }
    if (this.inc === undefined) await this.beat();
    if (this.inc === undefined) throw new BusUnavailableError('nats presence: this node is not registered yet');
    const inc = this.inc;
    await this.bucket.call((b) => b.kv.put(key, JSON.stringify({ ...storedFields(entry), inc })));
  }

  async list(channel: string): Promise<PresenceEntry[]> {
    try {
      return await this.bucket.call(async (b) => {
        const entries = await snapshot(b.kv, `p.${keyToken(channel)}.>`, LIST_MAX);
        const alive = new Map<string, boolean>();
        const now = Date.now() + this.skewMs;
        const out: PresenceEntry[] = [];
        for (const e of entries) {
          const [, , client, node] = e.key.split('.');
          if (client === undefined || node === undefined) continue;
          let ok = alive.get(node);
          if (ok === undefined) {
            const n = node === this.me ? undefined : await b.kv.get(`n.${node}`);
            ok = node === this.me ? this.inc !== undefined : n !== null && n !== undefined && n.operation === 'PUT' && parse(n).dead === undefined && n.created.getTime() >= now - this.options.ttl * 1000;
            alive.set(node, ok);
          }
          if (ok) out.push(entryFrom(fromToken(client), parse(e)));
        }
        return out;
      });
    } catch (err) {
      throw unavailable(err);
    }
  }

  start(onDeparted: DepartedHandler): void {
    this.onDeparted = onDeparted;
    this.bucket.start();
    void this.beat();
    this.timer = setInterval(() => void this.beat(), Math.max(TIMINGS.presenceHeartbeatMinMs, this.options.ttl * 1000 * TIMINGS.presenceHeartbeatFraction));
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

  private async heartbeat(): Promise<void> {
    const own = `n.${this.me}`;
    await this.bucket.call(async (b) => {
      let rev = this.rev;
      if (rev !== undefined) {
        try {
          rev = await b.kv.update(own, '{}', rev);
        } catch (err) {
          if (apiCode(err) !== WRONG_LAST_SEQUENCE) throw err;
          rev = undefined;
        }
      }
      if (rev === undefined) {
        // Registered now (again): a newer incarnation than anything a sweeper marked dead.
        const again = this.inc !== undefined;
        rev = await b.kv.put(own, '{}');
        this.inc = rev;
        // Swept (cut off, or NATS lost its state): this node's clients join again.
        if (again) this.options.rejoin();
      }
      this.rev = rev;
      // Leftovers of an earlier process with this node id go once, at start (retried until done).
      if (this.leftovers) {
        await this.sweepNode(b, this.me, this.inc!);
        this.leftovers = false;
      }
      // The server's time, as of this write: ages of other nodes are measured on it.
      const mine = await b.kv.get(own).catch(() => null);
      if (mine) this.skewMs = mine.created.getTime() - Date.now();
    });
    // NATS answers again: joins and leaves that failed meanwhile are written now.
    if (this.writes.pending > 0) this.writes.replay();
  }

  /** Marks silent nodes dead and removes up to {@link SWEEP_BATCH} of their entries. */
  private async sweep(): Promise<void> {
    await this.bucket.call(async (b) => {
      let budget = SWEEP_BATCH;
      const now = Date.now() + this.skewMs;
      for (const e of await snapshot(b.kv, 'n.*', LIST_MAX)) {
        const node = e.key.slice(2);
        if (node === this.me) continue;
        let dead = parse(e).dead;
        let marker = e.revision;
        if (typeof dead !== 'number') {
          if (e.created.getTime() >= now - this.options.ttl * 1000) continue;
          try {
            marker = await b.kv.update(e.key, JSON.stringify({ dead: e.revision }), e.revision);
            dead = e.revision;
          } catch (err) {
            if (apiCode(err) === WRONG_LAST_SEQUENCE) continue; // it came back, or another node marked it
            throw err;
          }
        }
        const { seen, more } = await this.sweepNode(b, node, (dead as number) + 1, budget);
        budget -= seen;
        if (!more) await b.jsm.streams.deleteMessage(b.stream, marker, false).catch(() => {});
        if (budget <= 0) return;
      }
    });
  }

  /**
   * Removes `node`'s entries of incarnations below `below`, each by its stream sequence: the one
   * caller whose removal succeeds reports the client as departed.
   */
  private async sweepNode(b: Bucket, node: string, below: number, budget = SWEEP_BATCH): Promise<{ seen: number; more: boolean }> {
    const entries = await snapshot(b.kv, `p.*.*.${node}`, budget);
    for (const e of entries) {
      const value = parse(e);
      if (!(typeof value.inc === 'number' && value.inc < below)) continue;
      try {
        await b.jsm.streams.deleteMessage(b.stream, e.revision, false);
      } catch (err) {
        if (apiCode(err) === NO_MESSAGE_FOUND) continue; // another node swept it, or it was written again
        throw err;
      }
      const [, channel, client] = e.key.split('.');
      this.onDeparted(fromToken(channel!), entryFrom(fromToken(client!), value));
    }
    return { seen: entries.length, more: entries.length >= budget };
  }

  async close(): Promise<void> {
    if (this.closing) return;
    clearInterval(this.timer);
    await this.beating;
    if (this.bucket.connected && this.inc !== undefined) {
      // This node's entries go with it (their `leave` events sent by the channel layer), then its key.
      await this.bucket.call(async (b) => {
        for (let round = 0; round < 10 && (await this.sweepNode(b, this.me, Infinity)).more; round++);
        if (this.rev !== undefined) await b.jsm.streams.deleteMessage(b.stream, this.rev, false).catch(() => {});
      }).catch((err: unknown) => this.options.logError(err as Error, 'presence: leaving NATS failed'));
    }
    this.closing = true;
    await this.bucket.close();
  }
}
