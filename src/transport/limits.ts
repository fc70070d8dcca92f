/**
 * Connection and message limits: per-IP connection counts, the per-connection token bucket,
 * the client address behind a trusted proxy, and ws's parser caps.
 *
 * None of these keeps a timer or a closure per socket: each limiter keeps its own bucket per
 * connection (four numbers), made at the connection's first message, refilled lazily when a
 * message arrives, and forgotten when the connection closes ({@link RateLimiter.forget}).
 */
import type { IncomingMessage } from 'node:http';
import type { Client } from './client.js';

/**
 * Most fragments one message may arrive in. Browsers and ws never fragment small messages; a
 * flood of tiny fragments would otherwise cost an object per byte up to --max-payload.
 * Past it ws closes with 1008.
 */
export const MAX_FRAGMENTS = 128;

/**
 * Most unparsed network chunks ws may hold for one socket (a frame arriving in tiny TCP
 * segments). Scaled with --max-payload so a legitimate large message in 512-byte segments fits.
 * Past it ws closes with 1008.
 */
export function maxBufferedChunks(maxPayload: number): number {
  return Math.max(1024, Math.ceil(maxPayload / 512));
}

/** The window over which dropped messages count towards "persistent abuse". */
export const ABUSE_WINDOW_MS = 10_000;

/** One connection's token bucket and its count of what was dropped, for either limiter. */
interface Bucket {
  tokens: number;
  refilledAt: number;
  /** Messages (or bytes) dropped since {@link windowStart}, for "persistent abuse". */
  dropped: number;
  windowStart: number;
}

/**
 * The buckets of one limiter, one per connection that has sent something. A Map rather than a
 * field on the connection: the limiter owns its state, and a connection that never sends costs
 * it nothing. The lookup is once per message received, not on the broadcast path.
 */
class Buckets {
  private readonly buckets = new Map<Client, Bucket>();

  /** `client`'s bucket, made full (`burst` tokens) at its first message. */
  of(client: Client, burst: number, now: number): Bucket {
    let bucket = this.buckets.get(client);
    if (bucket === undefined) this.buckets.set(client, (bucket = { tokens: burst, refilledAt: now, dropped: 0, windowStart: 0 }));
    return bucket;
  }

  dropped(client: Client): number {
    return this.buckets.get(client)?.dropped ?? 0;
  }

  forget(client: Client): void {
    this.buckets.delete(client);
  }

  get size(): number {
    return this.buckets.size;
  }
}

/** Refills `bucket` for the time since it was last refilled, up to `burst`. */
function refill(bucket: Bucket, rate: number, burst: number, now: number): void {
  if (now > bucket.refilledAt) {
    bucket.tokens = Math.min(burst, bucket.tokens + ((now - bucket.refilledAt) * rate) / 1000);
    bucket.refilledAt = now;
  }
}

/** Counts `amount` dropped in the current abuse window; true once past `threshold` (persistent abuse). */
function dropped(bucket: Bucket, amount: number, threshold: number, now: number): boolean {
  if (now - bucket.windowStart > ABUSE_WINDOW_MS) {
    bucket.windowStart = now;
    bucket.dropped = 0;
  }
  bucket.dropped += amount;
  return bucket.dropped > threshold;
}

/** What the rate limiter says about one message. */
export const RateVerdict = {
  /** Within the limit: deliver it. */
  OK: 0,
  /** Over the limit: drop it and tell the client. */
  LIMITED: 1,
  /** Over the limit persistently: drop it and close the socket with 1008. */
  ABUSE: 2,
} as const;
export type RateVerdict = (typeof RateVerdict)[keyof typeof RateVerdict];

/**
 * A token bucket per connection, refilled at `rate` tokens per second up to `burst`, with the
 * rule for persistent abuse: more tokens' worth dropped within {@link ABUSE_WINDOW_MS} than
 * `abuseThreshold`. A message the bucket cannot cover takes nothing from it, so a client that
 * slows down gets through again. Buckets are made at a connection's first message.
 */
abstract class TokenBuckets {
  private readonly buckets = new Buckets();

  constructor(
    readonly rate: number,
    readonly burst: number,
    readonly abuseThreshold: number,
  ) {}

  /** Takes `cost` tokens for `client` at `now` (ms). */
  protected takeTokens(client: Client, cost: number, now: number): RateVerdict {
    const bucket = this.buckets.of(client, this.burst, now);
    refill(bucket, this.rate, this.burst, now);
    if (bucket.tokens >= cost) {
      bucket.tokens -= cost;
      return RateVerdict.OK;
    }
    return dropped(bucket, cost, this.abuseThreshold, now) ? RateVerdict.ABUSE : RateVerdict.LIMITED;
  }

  /** Tokens of `client` dropped in the current abuse window. */
  dropped(client: Client): number {
    return this.buckets.dropped(client);
  }

  /** Forgets `client`'s bucket: its connection closed. */
  forget(client: Client): void {
    this.buckets.forget(client);
  }

  /** Connections with a bucket. */
  get size(): number {
    return this.buckets.size;
  }
}

/**
 * --rate-limit: `rate` messages per second per connection, a burst of one second's worth (at
 * least 1). Persistent abuse is more messages dropped within {@link ABUSE_WINDOW_MS} than the
 * limit admits in that window (10 × rate, at least 10): a client that keeps sending at twice the
 * limit or faster for ten seconds, or floods much faster, is disconnected.
 */
export class RateLimiter extends TokenBuckets {
  constructor(rate: number) {
    super(rate, Math.max(1, Math.ceil(rate)), Math.max(10, Math.ceil((rate * ABUSE_WINDOW_MS) / 1000)));
  }

  /** Takes one message's token for `client` at `now` (ms). */
  take(client: Client, now: number): RateVerdict {
    return this.takeTokens(client, 1, now);
  }
}

/**
 * --rate-limit-bytes: `rate` bytes per second per connection with a burst of `burst` bytes,
 * beside the {@link RateLimiter} of messages and with the same rule for persistent abuse, counted
 * in bytes: more bytes dropped within {@link ABUSE_WINDOW_MS} than the limit admits in that
 * window (10 × rate, at least the burst).
 */
export class ByteRateLimiter extends TokenBuckets {
  constructor(rate: number, burst: number) {
    super(rate, burst, Math.max(burst, Math.ceil((rate * ABUSE_WINDOW_MS) / 1000)));
  }

  /** Takes `bytes` tokens for `client` at `now` (ms). */
  take(client: Client, bytes: number, now: number): RateVerdict {
    return this.takeTokens(client, bytes, now);
  }
}

/** Open connections per client address, for --max-connections-per-ip. */
export class IpCounter {
  private readonly counts = new Map<string, number>();

  count(ip: string): number {
    return this.counts.get(ip) ?? 0;
  }

  add(ip: string): void {
    this.counts.set(ip, this.count(ip) + 1);
  }

  remove(ip: string): void {
    const n = this.count(ip) - 1;
    if (n > 0) this.counts.set(ip, n);
    else this.counts.delete(ip);
  }

  /** Addresses with at least one connection. */
  get size(): number {
    return this.counts.size;
  }
}

/** `::ffff:127.0.0.1` → `127.0.0.1`, so IPv4 peers look the same on dual-stack sockets. */
export function normalizeIp(ip: string): string {
  return ip.startsWith('::ffff:') && ip.includes('.') ? ip.slice(7) : ip;
}

/**
 * The client's address. Behind a proxy listed in --trust-proxy, the last X-Forwarded-For entry
 * (the one that proxy appended: HAProxy's `option forwardfor`); entries before it are the
 * client's own claims and are ignored. From any other peer the header is ignored.
 */
export function clientIp(req: IncomingMessage, trustedProxies: ReadonlySet<string>): string {
  const peer = normalizeIp(req.socket.remoteAddress ?? '');
  if (trustedProxies.size === 0 || !trustedProxies.has(peer)) return peer;
  const header = req.headers['x-forwarded-for'];
  if (header === undefined) return peer;
  const joined = Array.isArray(header) ? header.join(',') : header;
  const last = joined.slice(joined.lastIndexOf(',') + 1).trim();
  return last.length > 0 && last.length <= 45 ? normalizeIp(last) : peer;
}
