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
import { Events, type JetStreamManager, type KV, type KvEntry, type NatsConnection } from 'nats';
import { connectNats } from '../bus/nats.js';
import { Sleeper } from '../bus/retry.js';
import type { NatsAddress } from '../config/bus-address.js';
import { TIMINGS } from '../config/defaults.js';
import { BusUnavailableError, errorMessage } from '../errors.js';
import type { DepartedHandler, PresenceEntry, PresenceStore } from './store.js';
import { PresenceWrites } from './presence-writes.js';

/** Entries of dead nodes removed per sweep, at most: a crash of a node with many clients is cleaned up over several heartbeats. */
export const SWEEP_BATCH = 1000;
/** Clients a presence list reads, at most. */
export const LIST_MAX = 10_000;
/** How long a KV call (and a call waiting for the connection) may take before it counts as unavailable. */
const OP_TIMEOUT_MS = 2000;
/** JetStream API error codes: compare-and-set lost, message already gone. */
const WRONG_LAST_SEQUENCE = 10071;
const NO_MESSAGE_FOUND = 10037;

export interface NatsPresenceOptions {
  readonly address: NatsAddress;
  readonly prefix: string;
  readonly node: string;
  /** Seconds without a heartbeat after which a node's clients leave. */
  readonly ttl: number;
  readonly logError: (err: Error, what: string) => void;
  /** Says once what an operator must change (the server has no JetStream). */
  readonly warn: (line: string) => void;
  /** Called when this node was swept as dead (e.g. NATS was away) and must register its clients again. */
  readonly rejoin: () => void;
}

interface Bucket {
  readonly kv: KV;
  readonly jsm: JetStreamManager;
  readonly stream: string;
  /** The stream subject of a key. */
  readonly subject: (key: string) => string;
}

/** A KV key token for any string: base64url, `=` for the empty string (base64url never has `=`). */
export function keyToken(value: string): string {
  return value === '' ? '=' : Buffer.from(value, 'utf8').toString('base64url');
}

function fromToken(token: string): string {
  return token === '=' ? '' : Buffer.from(token, 'base64url').toString('utf8');
}

/** The bucket of a --bus-prefix: the prefix when it is a valid bucket name, else its hex. */
export function bucketName(prefix: string): string {
  return /^[A-Za-z0-9-]+$/.test(prefix) ? `presence_P_${prefix}` : `presence_H_${Buffer.from(prefix, 'utf8').toString('hex')}`;
}

function apiCode(err: unknown): number | undefined {
  return (err as { api_error?: { err_code?: number } } | undefined)?.api_error?.err_code;
}

function unavailable(err: unknown): BusUnavailableError {
  // The text reaches clients (`unavailable`): the server's own error stays in `cause`.
  return err instanceof BusUnavailableError ? err : new BusUnavailableError('the nats presence store did not answer', { cause: err });
}

function parse(entry: KvEntry): { user?: unknown; inc?: unknown; dead?: unknown } {
  try {
    return JSON.parse(entry.string()) as Record<string, unknown>;
  } catch {
    return {};
  }
}

export class NatsPresenceStore implements PresenceStore {
  readonly kind = 'nats';
  private nc: NatsConnection | undefined;
  private connected = false;
  private closing = false;
  private bucket: Promise<Bucket> | undefined;
  private readonly waiting = new Set<() => void>();
  private readonly sleeper = new Sleeper();
  private warned = false;
  /** A bucket was opened once: a later 503 is a server still starting, not one without JetStream. */
  private opened = false;
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
  }

  /** The connection opens on first use (a node without --presence never opens it). */
  private running = false;
  private ensureRunning(): void {
    if (this.running || this.closing) return;
    this.running = true;
    void this.run();
  }

  /** Connects, retrying until it succeeds, follows the connection's status, and starts over if it closes, until {@link close}. */
  private async run(): Promise<void> {
    while (!this.closing) {
      const nc = await connectNats(this.options.address, 'fanout-presence', {
        sleeper: this.sleeper,
        closing: () => this.closing,
        failed: (err) => {
          this.options.logError(err as Error, 'presence: NATS not reachable; retrying');
          return false;
        },
      });
      if (!nc) return;
      this.nc = nc;
      this.up(true);
      this.writes.replay();
      if (this.timer) void this.beat();
      void this.follow(nc);
      await nc.closed();
      this.nc = undefined;
      this.bucket = undefined;
      this.up(false);
    }
  }

  private async follow(nc: NatsConnection): Promise<void> {
    for await (const s of nc.status()) {
      if (this.nc !== nc) return;
      if (s.type === Events.Disconnect) this.up(false);
      else if (s.type === Events.Reconnect) {
        this.up(true);
        this.writes.replay();
        void this.beat();
      }
    }
  }

  private up(connected: boolean): void {
    this.connected = connected;
    if (!connected) return;
    for (const wake of this.waiting) wake();
    this.waiting.clear();
  }

  /** The bucket, created if missing; waits up to {@link OP_TIMEOUT_MS} for a connection, then rejects. */
  private async open(): Promise<Bucket> {
    if (this.closing) throw new BusUnavailableError('nats presence store is closed');
    this.ensureRunning();
    if (!this.connected) {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          this.waiting.delete(wake);
          reject(new BusUnavailableError('nats presence: not connected to NATS'));
        }, OP_TIMEOUT_MS);
        const wake = (): void => {
          clearTimeout(timer);
          resolve();
        };
        this.waiting.add(wake);
      });
    }
    const nc = this.nc!;
    this.bucket ??= (async () => {
      const name = bucketName(this.options.prefix);
      let jsm: JetStreamManager;
      try {
        jsm = await nc.jetstreamManager({ timeout: OP_TIMEOUT_MS });
      } catch (err) {
        // No responder for the JetStream API: the server runs without JetStream.
        if (!/503|not enabled/i.test(errorMessage(err))) throw err;
        if (!this.warned && !this.opened) this.options.warn('presence needs JetStream: start nats-server with -js, or give --history redis://host:port; presence is unavailable until then');
        this.warned = true;
        throw new BusUnavailableError('nats presence: JetStream is not enabled on the NATS server', { cause: err });
      }
      const kv = await nc.jetstream({ timeout: OP_TIMEOUT_MS }).views.kv(name, { history: 1, timeout: OP_TIMEOUT_MS });
      this.opened = true;
      return { kv, jsm, stream: `KV_${name}`, subject: (key: string) => `$KV.${name}.${key}` };
    })().catch((err: unknown) => {
      this.bucket = undefined;
      throw unavailable(err);
    });
    return this.bucket;
  }

  /**
   * Runs a KV step. On a failure other than a lost compare-and-set the bucket is opened again
   * (the server may have lost it, or be just back) and the step tried once more.
   */
  private async call<T>(step: (b: Bucket) => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      const bucket = await this.open();
      try {
        return await step(bucket);
      } catch (err) {
        const code = apiCode(err);
        if (code === WRONG_LAST_SEQUENCE || code === NO_MESSAGE_FOUND) throw err;
        this.bucket = undefined;
        if (attempt > 0 || !this.connected) throw err;
      }
    }
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
      await this.call((b) => b.jsm.streams.purge(b.stream, { filter: b.subject(key) }));
      return;
    }
    if (this.inc === undefined) await this.beat();
    if (this.inc === undefined) throw new BusUnavailableError('nats presence: this node is not registered yet');
    const inc = this.inc;
    await this.call((b) => b.kv.put(key, JSON.stringify({ user: entry.user, inc })));
  }

  async list(channel: string): Promise<PresenceEntry[]> {
    try {
      return await this.call(async (b) => {
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
          if (ok) out.push({ client: fromToken(client), user: userOf(parse(e).user) });
        }
        return out;
      });
    } catch (err) {
      throw unavailable(err);
    }
  }

  start(onDeparted: DepartedHandler): void {
    this.onDeparted = onDeparted;
    this.ensureRunning();
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
    await this.call(async (b) => {
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
    await this.call(async (b) => {
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
      this.onDeparted(fromToken(channel!), { client: fromToken(client!), user: userOf(value.user) });
    }
    return { seen: entries.length, more: entries.length >= budget };
  }

  async close(): Promise<void> {
    if (this.closing) return;
    clearInterval(this.timer);
    await this.beating;
    if (this.connected && this.inc !== undefined) {
      // This node's entries go with it (their `leave` events sent by the channel layer), then its key.
      await this.call(async (b) => {
        for (let round = 0; round < 10 && (await this.sweepNode(b, this.me, Infinity)).more; round++);
        if (this.rev !== undefined) await b.jsm.streams.deleteMessage(b.stream, this.rev, false).catch(() => {});
      }).catch((err: unknown) => this.options.logError(err as Error, 'presence: leaving NATS failed'));
    }
    this.closing = true;
    this.sleeper.wake();
    const nc = this.nc;
    this.nc = undefined;
    this.connected = false;
    if (nc) await nc.close().catch(() => {});
  }
}

/**
 * The current entries (deleted ones left out) of the keys `filter` matches, at most `max`: a
 * watch read up to the point it was opened, then stopped.
 */
async function snapshot(kv: KV, filter: string, max: number): Promise<KvEntry[]> {
  const out: KvEntry[] = [];
  let done!: () => void;
  let fail!: (err: Error) => void;
  const finished = new Promise<void>((resolve, reject) => {
    done = resolve;
    fail = reject;
  });
  const timer = setTimeout(() => fail(new BusUnavailableError(`nats presence: reading ${filter} timed out`)), OP_TIMEOUT_MS);
  const opened = kv.watch({ key: filter, initializedFn: () => done() });
  try {
    const watch = await Promise.race([opened, finished.then(() => opened)]);
    void (async () => {
      for await (const e of watch) {
        if (e.operation === 'PUT') out.push(e);
        if (out.length >= max) done();
      }
      fail(new BusUnavailableError(`nats presence: reading ${filter} ended early`));
    })().catch((err: unknown) => fail(unavailable(err)));
    try {
      await finished;
    } finally {
      watch.stop();
    }
  } finally {
    clearTimeout(timer);
    // A watch that opens after the timeout is stopped at once.
    void opened.then((w) => w.stop(), () => {});
  }
  return out.slice(0, max);
}

function userOf(value: unknown): string | null {
  return typeof value === 'string' ? value : null;
}
