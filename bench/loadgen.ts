/**
 * The load generator's main thread: spreads C clients over worker threads, runs one publisher at
 * R messages/s, and sums what the workers counted.
 *
 * A benchmark message carries `#<seq>|<send time µs>#`. Warm-up messages carry sequence 0 and
 * are not counted. Every client checks that sequence numbers only go up and measures latency
 * from the send time to the moment the chunk holding the frame was read.
 */
import { Worker } from 'node:worker_threads';
import { HISTOGRAM_SIZE, quantile, type WorkerData, type WorkerReport } from './loadgen-shared.js';
import { clientFrame, nowMicros, RawClient, stamp, type WireProtocol } from './ws-raw.js';

export interface Target {
  readonly host: string;
  readonly port: number;
  readonly path: string;
  readonly protocol: WireProtocol;
  /** Channel protocol: the channel clients subscribe to and the publisher publishes on. */
  readonly channel?: string | undefined;
  /** Channel protocol: the nodes' --api-key, for POST /api/publish. */
  readonly apiKey?: string | undefined;
}

export interface PoolOptions {
  readonly clients: number;
  readonly workers: number;
  readonly localAddresses: readonly string[];
  /** Handshakes in flight at once, per worker. */
  readonly concurrency?: number;
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

/** C clients on worker threads. */
export class ClientPool {
  private constructor(
    private readonly workers: Worker[],
    readonly connected: PoolStats,
  ) {}

  /** Opens every client and resolves once each is ready or has failed. */
  static async open(target: Target, options: PoolOptions): Promise<ClientPool> {
    const count = Math.max(1, Math.min(options.workers, options.clients));
    const workers: Worker[] = [];
    const reports: Promise<WorkerReport>[] = [];
    for (let i = 0; i < count; i++) {
      const share = Math.floor(options.clients / count) + (i < options.clients % count ? 1 : 0);
      const data: WorkerData = {
        host: target.host,
        port: target.port,
        path: target.path,
        protocol: target.protocol,
        channel: target.channel,
        count: share,
        // Every worker spreads its clients over all addresses, so each gets C / addresses.
        localAddresses: options.localAddresses,
        concurrency: options.concurrency ?? 64,
      };
      const worker = new Worker(WORKER, { workerData: data });
      workers.push(worker);
      reports.push(
        new Promise((resolve, reject) => {
          worker.once('error', reject);
          const onMessage = (msg: { type: string; report?: WorkerReport }) => {
            if (msg.type !== 'connected') return;
            worker.off('message', onMessage);
            resolve(msg.report!);
          };
          worker.on('message', onMessage);
        }),
      );
    }
    return new ClientPool(workers, merge(await Promise.all(reports)));
  }

  /** Tells every worker which arrival times (µs) count as inside the measurement window. */
  setWindow(start: number, end: number): void {
    for (const w of this.workers) w.postMessage({ type: 'window', start, end });
  }

  async stats(): Promise<PoolStats> {
    return merge(await Promise.all(this.workers.map((w) => ask(w, { type: 'stats' }, 'stats'))));
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => ask(w, { type: 'close' }, 'closed').catch(() => undefined)));
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}

function ask(worker: Worker, request: object, reply: string): Promise<WorkerReport> {
  return new Promise((resolve, reject) => {
    const onMessage = (msg: { type: string; report?: WorkerReport }) => {
      if (msg.type !== reply) return;
      worker.off('message', onMessage);
      worker.off('error', reject);
      resolve(msg.report!);
    };
    worker.on('message', onMessage);
    worker.once('error', reject);
    worker.postMessage(request);
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

/** One publisher at a steady rate. */
export class Publisher {
  private client: RawClient | null = null;
  private seq = 0;
  /** The first failed HTTP publish, reported when the run ends. */
  private failure: Error | null = null;

  private constructor(
    private readonly target: Target,
    private readonly via: PublishVia,
  ) {}

  static async open(target: Target, via: PublishVia, localAddress?: string): Promise<Publisher> {
    const publisher = new Publisher(target, via);
    if (via === 'socket') {
      await new Promise<void>((resolve, reject) => {
        publisher.client = new RawClient({
          ...target,
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
        const payloads: string[] = [];
        const now = nowMicros();
        for (; sent < due; sent++) payloads.push(stamp(counted ? ++this.seq : 0, now));
        this.publish(payloads, inflight);
      }
      const nextAt = t0 + (sent / rate) * 1000;
      await new Promise((r) => setTimeout(r, Math.max(0, nextAt - performance.now())));
    }
    await Promise.all(inflight);
    if (this.failure) throw this.failure;
    return sent;
  }

  private publish(payloads: readonly string[], inflight: Promise<unknown>[]): void {
    const { protocol, channel } = this.target;
    if (this.via === 'http') {
      for (const data of payloads) {
        inflight.push(
          fetch(`http://${this.target.host}:${this.target.port}/api/publish`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', authorization: `Bearer ${this.target.apiKey ?? ''}` },
            body: JSON.stringify({ channel, data }),
          })
            .then(async (res) => {
              const body = await res.text();
              if (res.status !== 200) throw new Error(`POST /api/publish: ${res.status} ${body}`);
            })
            .catch((err: Error) => {
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
      return clientFrame(p);
    });
    this.client!.sendRaw(frames.length === 1 ? frames[0]! : Buffer.concat(frames));
  }

  close(): void {
    this.client?.close();
  }
}

/** p50/p99 in milliseconds from a pool's histogram. */
export function latencies(stats: PoolStats): { p50: number; p99: number; max: number } {
  return { p50: quantile(stats.hist, 0.5) / 1000, p99: quantile(stats.hist, 0.99) / 1000, max: stats.maxLatency / 1000 };
}
