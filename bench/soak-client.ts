/**
 * The clients of a soak run (`npm run bench -- --soak`), in one forked process driven over IPC by
 * bench/soak.ts; argv[2] is a {@link SoakClientSpec} in JSON. Three kinds, all with the SDK:
 * - steady subscribers, one channel each, which count every message by its sequence number (a gap
 *   is a missed message; the SDK recovers with `since` across node restarts, so only what it could
 *   not recover shows) and keep a latency histogram;
 * - presence members, subscribed to the presence channel for the whole run;
 * - churning connections: connect, subscribe (a churn channel with presence), read history,
 *   publish, disconnect, so many a second, at most {@link CHURN_TIMEOUT_MS} each.
 * Every connection's client id is remembered while it is open and for a while after it closed, so
 * the bench can tell a presence entry left behind from one whose connection just closed.
 * Messages: it sends `ready` once the steady subscribers and presence members are subscribed, and
 * answers `sample` with a {@link SoakClientSample} and `ids` with {@link SoakClientIds}; `stop-churn` ends the churn; `close` closes all.
 */
import { WebSocket } from 'ws';
import { FanoutClient } from '../client/index.js';
import { nowMs, type Stamp } from './faults-client.js';

/** A churn cycle that has not ended by then is closed and counted as failed. */
export const CHURN_TIMEOUT_MS = 15_000;
/** Latency histogram: 1 ms buckets up to this, the last bucket holds everything slower. */
export const LATENCY_BUCKETS = 10_000;

export interface SoakClientSpec {
  /** ws://host:port of HAProxy. */
  readonly origin: string;
  /** Steady subscribers of this process, spread over `channels` round robin. */
  readonly steady: number;
  readonly channels: readonly string[];
  readonly presence: number;
  readonly presenceChannel: string;
  /** Churn cycles per second started by this process, over `churnChannels`. */
  readonly churnRate: number;
  readonly churnChannels: readonly string[];
  /** How long a closed connection's client id is remembered, ms. */
  readonly rememberClosedMs: number;
}

/** What the process saw since it started (counts) and since the last sample (latencies). */
export interface SoakClientSample {
  /** Per steady channel: distinct messages delivered over its subscribers, and the next sequence number each subscriber waits for. */
  readonly steady: { readonly channel: string; readonly delivered: number; readonly missed: number; readonly duplicates: number; readonly next: number[] }[];
  readonly unrecovered: number;
  readonly reconnects: number;
  /** Sparse latency histogram since the last sample: [bucket ms, count]. */
  readonly latencies: [number, number][];
  readonly churn: { readonly started: number; readonly completed: number; readonly failed: number; readonly skipped: number; readonly inFlight: number; readonly lastError: string };
}

/** The answer to `ids`: client ids of open connections, and of connections closed at or after `since` (ms, epoch). */
export interface SoakClientIds {
  readonly live: string[];
  readonly closedSince: string[];
}

/** A FanoutClient that remembers its connections' ids, open and closed. */
class Tracked {
  readonly client: FanoutClient;
  current: string | undefined;
  connections = 0;

  constructor(origin: string, private readonly ids: IdBook) {
    this.client = new FanoutClient({ url: `${origin}/ws/v1`, WebSocket: WebSocket as never });
    this.client.on('connected', (info) => {
      this.connections++;
      this.current = info.client;
      ids.open(info.client);
    });
    this.client.on('disconnected', () => this.ended());
  }

  private ended(): void {
    if (this.current) this.ids.closed(this.current);
    this.current = undefined;
  }

  close(): void {
    this.ended();
    this.client.close();
  }
}

/** Open connections' ids, and closed ones with when they closed (pruned after `keepMs`). */
class IdBook {
  readonly live = new Set<string>();
  private closedList: [string, number][] = [];

  constructor(private readonly keepMs: number) {}

  open(id: string): void {
    this.live.add(id);
  }

  closed(id: string): void {
    if (!this.live.delete(id)) return;
    this.closedList.push([id, Date.now()]);
    if (this.closedList.length > 1024 && this.closedList[0]![1] < Date.now() - this.keepMs) {
      const cut = Date.now() - this.keepMs;
      this.closedList = this.closedList.filter(([, at]) => at >= cut);
    }
  }

  closedSince(since: number): string[] {
    return this.closedList.filter(([, at]) => at >= since).map(([id]) => id);
  }
}

interface Steady {
  readonly channel: number;
  next: number;
  delivered: number;
  missed: number;
  duplicates: number;
}

function main(): void {
  const spec = JSON.parse(process.argv[2]!) as SoakClientSpec;
  const ids = new IdBook(spec.rememberClosedMs);
  const histogram = new Uint32Array(LATENCY_BUCKETS + 1);
  const steady: Steady[] = [];
  const tracked: Tracked[] = [];
  let unrecovered = 0;
  let pending = spec.steady + spec.presence;
  const ready = () => {
    if (--pending === 0) process.send!({ type: 'ready' });
  };
  if (pending === 0) process.send!({ type: 'ready' });

  const openSteady = (i: number) => {
    const t = new Tracked(spec.origin, ids);
    const s: Steady = { channel: i % spec.channels.length, next: 0, delivered: 0, missed: 0, duplicates: 0 };
    // The SDK delivers in offset order and recovers with `since`: a sequence number past the next
    // one expected is a gap it could not fill, one below it a copy.
    const sub = t.client.subscribe<Stamp>(spec.channels[s.channel]!, {
      onMessage: (data) => {
        if (data.s < s.next) {
          s.duplicates++;
          return;
        }
        s.missed += data.s - s.next;
        s.next = data.s + 1;
        s.delivered++;
        histogram[Math.min(LATENCY_BUCKETS, Math.floor(nowMs() - data.t))]!++;
      },
      onUnrecovered: () => unrecovered++,
    });
    sub.once('subscribed', ready);
    t.client.connect();
    steady.push(s);
    tracked.push(t);
  };
  const openMember = () => {
    const t = new Tracked(spec.origin, ids);
    t.client.subscribe(spec.presenceChannel).once('subscribed', ready);
    t.client.connect();
    tracked.push(t);
  };
  // Opened a few at a time, as pages would: not all in one turn of the event loop.
  let opened = 0;
  const total = spec.steady + spec.presence;
  const openSome = () => {
    for (let i = 0; i < 25 && opened < total; i++, opened++) {
      if (opened < spec.steady) openSteady(opened);
      else openMember();
    }
    if (opened < total) setTimeout(openSome, 10);
  };
  openSome();

  const churn = { started: 0, completed: 0, failed: 0, skipped: 0, inFlight: 0, lastError: '' };
  const cycle = async (n: number) => {
    const t = new Tracked(spec.origin, ids);
    churn.inFlight++;
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      t.close();
    }, CHURN_TIMEOUT_MS);
    try {
      const sub = t.client.subscribe(spec.churnChannels[n % spec.churnChannels.length]!);
      const subscribed = new Promise<void>((resolve, reject) => {
        sub.once('subscribed', () => resolve());
        t.client.once('closed', (info) => reject(new Error(`closed ${info.code} before subscribed`)));
      });
      t.client.connect();
      await subscribed;
      await sub.history(5);
      await sub.publish({ churn: n });
      churn.completed++;
    } catch (err) {
      churn.failed++;
      churn.lastError = timedOut ? `not done after ${CHURN_TIMEOUT_MS / 1000} s` : (err as Error).message;
    } finally {
      clearTimeout(timer);
      t.close();
      churn.inFlight--;
    }
  };
  let churnTimer: NodeJS.Timeout | undefined;
  if (spec.churnRate > 0) {
    // Started on a schedule, whatever the server's pace; bounded: past a timeout's worth in
    // flight a cycle is skipped (and counted) rather than piling up.
    const start = Date.now();
    const maxInFlight = Math.ceil(spec.churnRate * (CHURN_TIMEOUT_MS / 1000));
    churnTimer = setInterval(() => {
      const due = Math.floor(((Date.now() - start) / 1000) * spec.churnRate);
      while (churn.started + churn.skipped < due) {
        if (churn.inFlight >= maxInFlight) churn.skipped++;
        else void cycle(churn.started++);
      }
    }, 20);
  }

  process.on('message', (msg: { type?: string; since?: number }) => {
    if (msg?.type === 'sample') {
      const latencies: [number, number][] = [];
      histogram.forEach((n, ms) => n > 0 && latencies.push([ms, n]));
      histogram.fill(0);
      const sample: SoakClientSample = {
        steady: spec.channels.map((channel, c) => {
          const mine = steady.filter((s) => s.channel === c);
          const sum = (f: (s: Steady) => number) => mine.reduce((n, s) => n + f(s), 0);
          return { channel, delivered: sum((s) => s.delivered), missed: sum((s) => s.missed), duplicates: sum((s) => s.duplicates), next: mine.map((s) => s.next) };
        }),
        unrecovered,
        reconnects: tracked.reduce((n, t) => n + Math.max(0, t.connections - 1), 0),
        latencies,
        churn: { ...churn },
      };
      process.send!({ type: 'sample', sample });
    } else if (msg?.type === 'ids') {
      const known: SoakClientIds = { live: [...ids.live], closedSince: ids.closedSince(msg.since ?? 0) };
      process.send!({ type: 'ids', ids: known });
    } else if (msg?.type === 'stop-churn') {
      clearInterval(churnTimer);
      process.send!({ type: 'churn-stopped' });
    } else if (msg?.type === 'close') {
      clearInterval(churnTimer);
      for (const t of tracked) t.close();
      process.send!({ type: 'closed' }, () => process.exit(0));
    }
  });
  process.on('disconnect', () => process.exit(0));
}

if (process.send && process.argv[2]) main();
