/**
 * The KV bucket NATS presence lives in (presence.ts), and the connection to it: opened on first
 * use, retried until it succeeds, followed through the client's reconnects, started over when it
 * closes. While it is down a call waits up to {@link OP_TIMEOUT_MS} for it, then rejects with
 * BusUnavailableError. Beside it: the key tokens and a snapshot read of the keys a filter matches.
 */
import type { JetStreamManager, KV, KvEntry, NatsConnection } from 'nats';
import { connectNats } from './bus.js';
import { nats } from './client.js';
import { Sleeper } from '../../stores/retry.js';
import type { NatsAddress } from '../../config/bus-address.js';
import { BusUnavailableError, errorMessage } from '../../errors.js';

/** How long a KV call (and a call waiting for the connection) may take before it counts as unavailable. */
export const OP_TIMEOUT_MS = 2000;
/** JetStream API error codes: compare-and-set lost, message already gone. */
export const WRONG_LAST_SEQUENCE = 10071;
export const NO_MESSAGE_FOUND = 10037;

export interface Bucket {
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

export function fromToken(token: string): string {
  return token === '=' ? '' : Buffer.from(token, 'base64url').toString('utf8');
}

/** The bucket of a --bus-prefix: the prefix when it is a valid bucket name, else its hex. */
export function bucketName(prefix: string): string {
  return /^[A-Za-z0-9-]+$/.test(prefix) ? `presence_P_${prefix}` : `presence_H_${Buffer.from(prefix, 'utf8').toString('hex')}`;
}

export function apiCode(err: unknown): number | undefined {
  return (err as { api_error?: { err_code?: number } } | undefined)?.api_error?.err_code;
}

export function unavailable(err: unknown): BusUnavailableError {
  // The text reaches clients (`unavailable`): the server's own error stays in `cause`.
  return err instanceof BusUnavailableError ? err : new BusUnavailableError('the nats presence store did not answer', { cause: err });
}

export function parse(entry: KvEntry): { user?: unknown; inc?: unknown; dead?: unknown } {
  try {
    return JSON.parse(entry.string()) as Record<string, unknown>;
  } catch {
    return {};
  }
}

export interface PresenceBucketOptions {
  readonly address: NatsAddress;
  readonly prefix: string;
  readonly logError: (err: Error, what: string) => void;
  /** Says once what an operator must change (the server has no JetStream). */
  readonly warn: (line: string) => void;
  /** The connection is up: at its first connect and start-over (`reconnect` false) and after each reconnect of the client (true). */
  readonly onConnected: (reconnect: boolean) => void;
}

/** The bucket behind a connection of its own; {@link call} runs a step on it. */
export class PresenceBucket {
  private nc: NatsConnection | undefined;
  private up = false;
  private closing = false;
  private running = false;
  private bucket: Promise<Bucket> | undefined;
  private readonly waiting = new Set<() => void>();
  private readonly sleeper = new Sleeper();
  private warned = false;
  /** A bucket was opened once: a later 503 is a server still starting, not one without JetStream. */
  private opened = false;

  constructor(private readonly options: PresenceBucketOptions) {}

  get connected(): boolean {
    return this.up;
  }

  /** The connection opens on first use (a node without --presence never opens it). */
  start(): void {
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
      this.setUp(true);
      this.options.onConnected(false);
      void this.follow(nc);
      await nc.closed();
      this.nc = undefined;
      this.bucket = undefined;
      this.setUp(false);
    }
  }

  private async follow(nc: NatsConnection): Promise<void> {
    for await (const s of nc.status()) {
      if (this.nc !== nc) return;
      if (s.type === nats().Events.Disconnect) this.setUp(false);
      else if (s.type === nats().Events.Reconnect) {
        this.setUp(true);
        this.options.onConnected(true);
      }
    }
  }

  private setUp(connected: boolean): void {
    this.up = connected;
    if (!connected) return;
    for (const wake of this.waiting) wake();
    this.waiting.clear();
  }

  /** The bucket, created if missing; waits up to {@link OP_TIMEOUT_MS} for a connection, then rejects. */
  private async open(): Promise<Bucket> {
    if (this.closing) throw new BusUnavailableError('nats presence store is closed');
    this.start();
    if (!this.up) {
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
  async call<T>(step: (b: Bucket) => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      const bucket = await this.open();
      try {
        return await step(bucket);
      } catch (err) {
        const code = apiCode(err);
        if (code === WRONG_LAST_SEQUENCE || code === NO_MESSAGE_FOUND) throw err;
        this.bucket = undefined;
        if (attempt > 0 || !this.up) throw err;
      }
    }
  }

  /** Closes the connection; calls after it reject. */
  async close(): Promise<void> {
    this.closing = true;
    this.sleeper.wake();
    const nc = this.nc;
    this.nc = undefined;
    this.up = false;
    if (nc) await nc.close().catch(() => {});
  }
}

/**
 * The current entries (deleted ones left out) of the keys `filter` matches, at most `max`: a
 * watch read up to the point it was opened, then stopped.
 */
export async function snapshot(kv: KV, filter: string, max: number): Promise<KvEntry[]> {
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
