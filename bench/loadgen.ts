/**
 * The load generator's main thread: spreads C clients over worker threads, runs one publisher at
 * R messages/s, and sums what the workers counted.
 *
 * A benchmark message carries `#<seq>|<send time µs>#`. Warm-up messages carry sequence 0 and
 * are not counted. Every client checks that sequence numbers only go up and measures latency
 * from the send time to the moment the chunk holding the frame was read.
 */
import { fork } from 'node:child_process';
import type { EventEmitter } from 'node:events';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { HISTOGRAM_SIZE, LANE_DATA_ENV, quantile, type ClientProtocol, type WorkerData, type WorkerReport } from './loadgen-shared.js';
import { clientFrame, nowMicros, RawClient, stamp, type WireProtocol } from './ws-raw.js';

export interface Target {
  readonly host: string;
  readonly port: number;
  readonly path: string;
  readonly protocol: ClientProtocol;
  /** Channel protocol and SSE: the channel clients subscribe to and the publisher publishes on. */
  readonly channel?: string | undefined;
  /** SSE: the channel protocol's WebSocket path on the same frontend, for the publisher. */
  readonly publishPath?: string | undefined;
  /** Channel protocol and SSE: the nodes' --api-key, for POST /api/publish. */
  readonly apiKey?: string | undefined;
  /** Channel protocol: clients subscribe with `"delta":true` (bench/delta.ts). */
  readonly delta?: boolean | undefined;
  /** What the publisher sends for a stamp: the stamp itself (default), or e.g. a document holding it (bench/delta.ts). */
  readonly payload?: ((stamp: string) => unknown) | undefined;
  /**
   * How the HTTP publisher sends one message, when the system has an API of its own (the Pusher
   * lane's POST /apps/{id}/events, bench/pusher-system.ts); default: POST /api/publish.
   */
  readonly post?: ((data: unknown) => Promise<void>) | undefined;
}

export interface PoolOptions {
  readonly clients: number;
  /** Lanes the clients are spread over: worker threads, or child processes with `processes`. */
  readonly workers: number;
  readonly localAddresses: readonly string[];
  /** Handshakes in flight at once, per lane. */
  readonly concurrency?: number;
  /** Frontends to spread the clients over (default: the target's port alone). */
  readonly ports?: readonly number[];
  /**
   * Lanes as child processes rather than threads: each holds its clients' sockets under its own
   * file limit, so one bench can open more than one process may.
   */
  readonly processes?: boolean;
}

/** The sum of every worker's report. */
export interface PoolStats {
  ready: number;
  failed: number;
  lostAfterReady: number;
  received: number;
  seen: number;
  inWindow: number;
  outOfOrder: number;
  maxLatency: number;
  hist: Uint32Array;
  reasons: Map<string, number>;
}

const WORKER = new URL('./loadgen-worker.js', import.meta.url);

/** A worker thread or a child process running loadgen-worker.js: both say 'message' and 'error'. */
interface Lane {
  readonly events: EventEmitter;
  post(msg: object): void;
  stop(): Promise<unknown>;
}

function startLane(data: WorkerData, processes: boolean): Lane {
  if (!processes) {
    const worker = new Worker(WORKER, { workerData: data });
    return { events: worker, post: (msg) => worker.postMessage(msg), stop: () => worker.terminate() };
  }
  const child = fork(fileURLToPath(WORKER), [], {
    env: { ...process.env, [LANE_DATA_ENV]: JSON.stringify(data) },
    serialization: 'advanced',
    execArgv: [],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const exit = new Promise((resolve) => child.once('exit', resolve));
  return {
    events: child,
    post: (msg) => child.send(msg),
    stop: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill();
      return exit;
    },
  };
}

/** C clients on lanes (worker threads or child processes). */
export class ClientPool {
  private constructor(
    private readonly lanes: Lane[],
    readonly connected: PoolStats,
  ) {}

  /** Opens every client and resolves once each is ready or has failed. */
  static async open(target: Target, options: PoolOptions): Promise<ClientPool> {
    const count = Math.max(1, Math.min(options.workers, options.clients));
    const lanes: Lane[] = [];
    const reports: Promise<WorkerReport>[] = [];
    for (let i = 0; i < count; i++) {
      const share = Math.floor(options.clients / count) + (i < options.clients % count ? 1 : 0);
      const data: WorkerData = {
        host: target.host,
        ports: options.ports ?? [target.port],
        path: target.path,
        protocol: target.protocol,
        channel: target.channel,
        delta: target.delta,
        count: share,
        // Every lane spreads its clients over all addresses, so each gets C / addresses.
        localAddresses: options.localAddresses,
        concurrency: options.concurrency ?? 64,
      };
      const lane = startLane(data, options.processes ?? false);
      lanes.push(lane);
      reports.push(
        new Promise((resolve, reject) => {
          lane.events.once('error', reject);
          // A lane that dies (out of memory, killed) before its clients connected fails the open, not hangs it.
          const onExit = (code: unknown) => reject(new Error(`load-generator lane ${i} exited (${String(code)}) before its clients connected`));
          lane.events.once('exit', onExit);
          const onMessage = (msg: { type: string; report?: WorkerReport }) => {
            if (msg.type !== 'connected') return;
            lane.events.off('message', onMessage);
            lane.events.off('exit', onExit);
            resolve(msg.report!);
          };
          lane.events.on('message', onMessage);
        }),
      );
    }
    return new ClientPool(lanes, merge(await Promise.all(reports)));
  }

  /** Tells every lane which arrival times (µs) count as inside the measurement window. */
  setWindow(start: number, end: number): void {
    for (const lane of this.lanes) lane.post({ type: 'window', start, end });
  }

  async stats(): Promise<PoolStats> {
    return merge(await Promise.all(this.lanes.map((lane) => ask(lane, { type: 'stats' }, 'stats'))));
  }

  async close(): Promise<void> {
    await Promise.all(this.lanes.map((lane) => ask(lane, { type: 'close' }, 'closed').catch(() => undefined)));
    await Promise.all(this.lanes.map((lane) => lane.stop()));
  }
}

function ask(lane: Lane, request: object, reply: string): Promise<WorkerReport> {
  return new Promise((resolve, reject) => {
    const onMessage = (msg: { type: string; report?: WorkerReport }) => {
      if (msg.type !== reply) return;
      lane.events.off('message', onMessage);
      lane.events.off('error', reject);
      resolve(msg.report!);
    };
    lane.events.on('message', onMessage);
    lane.events.once('error', reject);
    lane.post(request);
  });
}

function merge(reports: readonly WorkerReport[]): PoolStats {
  const total: PoolStats = {
    ready: 0,
    failed: 0,
    lostAfterReady: 0,
    received: 0,
    seen: 0,
    inWindow: 0,
    outOfOrder: 0,
    maxLatency: 0,
    hist: new Uint32Array(HISTOGRAM_SIZE),
    reasons: new Map(),
  };
  for (const r of reports) {
    total.ready += r.ready;
    total.failed += r.failed;
    total.lostAfterReady += r.lostAfterReady;
    total.received += r.received;
    total.seen += r.seen;
    total.inWindow += r.inWindow;
    total.outOfOrder += r.outOfOrder;
    total.maxLatency = Math.max(total.maxLatency, r.maxLatency);
    if (r.hist) for (let i = 0; i < HISTOGRAM_SIZE; i++) total.hist[i]! += r.hist[i]!;
    for (const [k, v] of r.reasons) total.reasons.set(k, (total.reasons.get(k) ?? 0) + v);
  }
  return total;
}

/** How the publisher sends: over its own WebSocket, or (channel protocol) POST /api/publish. */
export type PublishVia = 'socket' | 'http';

/**
 * What the publisher's WebSocket speaks to: the clients' target, or, for SSE clients (a stream
 * only receives), the channel protocol at `publishPath`, as the channel row's publisher does.
 */
function publisherWire(target: Target): { path: string; protocol: WireProtocol } {
  if (target.protocol !== 'sse' && target.protocol !== 'sse-session') return { path: target.path, protocol: target.protocol };
  return { path: target.publishPath ?? '/ws/v1', protocol: 'channel' };
}

/** One publisher at a steady rate. */
export class Publisher {
  private client: RawClient | null = null;
  private seq = 0;
  /** The send time of the last document payload (see run). */
  private lastMicros = 0;
  /** The first failed HTTP publish, reported when the run ends. */
  private failure: Error | null = null;

  private constructor(
    private readonly target: Target,
    private readonly via: PublishVia,
  ) {}

  static async open(target: Target, via: PublishVia, localAddress?: string): Promise<Publisher> {
    const publisher = new Publisher(target, via);
    if (via === 'socket' && target.protocol === 'pusher') throw new Error('a Pusher client cannot publish to a public channel: the Pusher lane publishes over HTTP');
    if (via === 'socket') {
      await new Promise<void>((resolve, reject) => {
        publisher.client = new RawClient({
          ...target,
          ...publisherWire(target),
          localAddress,
          onText: () => undefined,
          onReady: resolve,
          onClose: (reason) => reject(new Error(`publisher: ${reason}`)),
        });
      });
    }
    return publisher;
  }

  /**
   * Sends at `rate` messages/s for `seconds`; `counted` false sends warm-up messages (sequence
   * 0). Resolves with the number of messages sent.
   */
  async run(rate: number, seconds: number, counted: boolean): Promise<number> {
    const total = Math.round(rate * seconds);
    const t0 = performance.now();
    let sent = 0;
    const inflight: Promise<unknown>[] = [];
    while (sent < total) {
      const due = Math.min(total, Math.floor(((performance.now() - t0) / 1000) * rate) + 1);
      if (due > sent) {
        const payloads: unknown[] = [];
        const now = nowMicros();
        const payload = this.target.payload;
        for (; sent < due; sent++) {
          if (!payload) {
            payloads.push(stamp(counted ? ++this.seq : 0, now));
            continue;
          }
          // Documents (bench/delta.ts): each stamp at least 10 µs after the last, so consecutive
          // stamps differ in their last two digits and share no 16-byte run a delta could copy.
          this.lastMicros = Math.max(nowMicros(), this.lastMicros + 10);
          payloads.push(payload(stamp(counted ? ++this.seq : 0, this.lastMicros)));
        }
        this.publish(payloads, inflight);
      }
      const nextAt = t0 + (sent / rate) * 1000;
      await new Promise((r) => setTimeout(r, Math.max(0, nextAt - performance.now())));
    }
    await Promise.all(inflight);
    if (this.failure) throw this.failure;
    return sent;
  }

  private publish(payloads: readonly unknown[], inflight: Promise<unknown>[]): void {
    const { channel } = this.target;
    const { protocol } = publisherWire(this.target);
    if (this.via === 'http') {
      const post = this.target.post ?? this.postApi;
      for (const data of payloads) {
        inflight.push(
          post(data).catch((err: Error) => {
            const cause = (err.cause as Error | undefined)?.message;
            this.failure ??= cause ? new Error(`${err.message}: ${cause}`) : err;
          }),
        );
      }
      return;
    }
    const frames = payloads.map((p) => {
      if (protocol === 'socketio') return clientFrame(`42${JSON.stringify(['message', p])}`);
      if (protocol === 'channel') return clientFrame(JSON.stringify({ type: 'publish', channel, data: p }));
      return clientFrame(p as string);
    });
    this.client!.sendRaw(frames.length === 1 ? frames[0]! : Buffer.concat(frames));
  }

  private readonly postApi = async (data: unknown): Promise<void> => {
    const res = await fetch(`http://${this.target.host}:${this.target.port}/api/publish`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${this.target.apiKey ?? ''}` },
      body: JSON.stringify({ channel: this.target.channel, data }),
    });
    const body = await res.text();
    if (res.status !== 200) throw new Error(`POST /api/publish: ${res.status} ${body}`);
  };

  close(): void {
    this.client?.close();
  }
}

/**
 * p50/p99 in milliseconds from a pool's histogram. A bucket's quantile is its upper bound, which
 * can pass the largest latency measured (114 ms against a max of 113.8): no quantile is above it.
 */
export function latencies(stats: PoolStats): { p50: number; p99: number; max: number } {
  const max = stats.maxLatency / 1000;
  return { p50: Math.min(quantile(stats.hist, 0.5) / 1000, max), p99: Math.min(quantile(stats.hist, 0.99) / 1000, max), max };
}
