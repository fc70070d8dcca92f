/**
 * Redis pub/sub with ioredis: one connection publishes, one subscribes (a subscribed Redis
 * connection can do nothing else). Publishes never queue while Redis is away: they reject at once,
 * so the caller can answer an error instead of dropping silently.
 */
import { Redis, type RedisOptions } from 'ioredis';
import { BusUnavailableError, ConfigError, errorMessage } from '../../errors.js';
import { BaseBus } from '../../stores/bus.js';

/** Reconnect backoff: 50 ms doubling to 2 s. */
export function redisRetryDelay(attempt: number): number {
  return Math.min(50 * 2 ** Math.min(attempt, 6), 2000);
}

/** ioredis options shared by every Fanout Redis connection: fail fast, retry forever in the background. */
export function redisOptions(extra: RedisOptions = {}): RedisOptions {
  return {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    commandTimeout: 5000,
    connectTimeout: 5000,
    retryStrategy: redisRetryDelay,
    ...extra,
  };
}

/**
 * What Redis answers a wrong password (WRONGPASS) or a missing one (NOAUTH): retrying cannot
 * help, so at start it is a configuration error of the flag that holds the URL.
 */
export function redisAuthRefusal(err: unknown, flag: string): ConfigError | undefined {
  const message = errorMessage(err);
  if (/^WRONGPASS\b/.test(message)) return new ConfigError(flag, 'Redis refused the user or password (WRONGPASS); give the right ones in the URL, redis://[user]:password@host:port');
  if (/^NOAUTH\b/.test(message)) return new ConfigError(flag, 'Redis requires a password (NOAUTH); give it in the URL, redis://[user]:password@host:port');
  return undefined;
}

export class RedisBus extends BaseBus {
  readonly kind = 'redis';
  private readonly pub: Redis;
  private readonly sub: Redis;
  private closing = false;
  private connectedOnce = false;
  private lastError: Error | undefined;

  /** `flag` is the flag that gave `url` (`--bus`, or `--history` for a separate history Redis), for errors. */
  constructor(url: string, private readonly flag = '--bus') {
    super();
    this.pub = new Redis(url, redisOptions({ connectionName: 'fanout-pub' }));
    this.sub = new Redis(url, redisOptions({ connectionName: 'fanout-sub', autoResubscribe: false }));
    for (const conn of [this.pub, this.sub]) {
      // Errors surface as status changes; the node logs transitions, not every retry.
      conn.on('error', (err: Error) => {
        this.lastError = err;
        this.update(err);
      });
      conn.on('ready', () => this.update());
      conn.on('close', () => this.update(new Error('connection closed')));
      conn.on('end', () => this.update(new Error('connection ended')));
    }
    this.sub.on('messageBuffer', (channel: Buffer, message: Buffer) => {
      this.handler(channel.toString(), message);
    });
  }

  private update(cause?: Error): void {
    if (this.closing) return;
    if (this.pub.status === 'ready' && this.sub.status === 'ready') {
      this.connectedOnce = true;
      this.setStatus('connected');
    }
    else if (this.status === 'connected' || cause) this.setStatus('disconnected', cause);
  }

  async connect(): Promise<void> {
    const results = await Promise.allSettled([this.pub.connect(), this.sub.connect()]);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) {
      // ioredis rejects with "Connection is closed."; the reason came in an 'error' event. Refused
      // later, after the node was in, Redis may be mid-reconfiguration: keep retrying then.
      const refused = this.connectedOnce ? undefined : redisAuthRefusal(this.lastError, this.flag);
      if (refused) {
        this.closing = true;
        this.pub.disconnect();
        this.sub.disconnect();
        this.setStatus('disconnected', refused);
        throw refused;
      }
      throw new BusUnavailableError(`redis: ${errorMessage(this.lastError ?? failed.reason)}`, { cause: failed.reason });
    }
    this.update();
  }

  async publish(topic: string, payload: Buffer): Promise<void> {
    if (!this.connected) throw new BusUnavailableError('redis is not connected');
    try {
      await this.pub.publish(topic, payload);
    } catch (err) {
      throw new BusUnavailableError(`redis publish failed: ${errorMessage(err)}`, { cause: err });
    }
  }

  async subscribe(topic: string): Promise<void> {
    // Subscribing on a connection still running its ready check puts it in subscriber mode
    // mid-handshake and ioredis drops it; the node subscribes again once we report `connected`.
    if (this.sub.status !== 'ready') throw new BusUnavailableError(`redis is ${this.sub.status}`);
    try {
      await this.sub.subscribe(topic);
    } catch (err) {
      throw new BusUnavailableError(`redis subscribe failed: ${errorMessage(err)}`, { cause: err });
    }
  }

  async unsubscribe(topic: string): Promise<void> {
    if (this.sub.status !== 'ready') return;
    await this.sub.unsubscribe(topic).catch(() => {});
  }

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    this.setStatus('closed');
    await Promise.allSettled([this.pub.quit(), this.sub.quit()]);
    this.pub.disconnect();
    this.sub.disconnect();
  }
}
