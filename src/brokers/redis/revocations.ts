/**
 * Revocations in Redis (stores/store.ts, `RevocationStore`): a hash `<prefix>:revoked` of entries
 * by key (JSON) and a sorted set `<prefix>:revoked:until` of the same keys scored by `until`. Each
 * add removes up to {@link PRUNE_BATCH} expired entries in the same script, and a list reads only
 * the keys whose `until` is ahead, so an expired entry is never listed and does not stay.
 */
import type { Redis } from 'ioredis';
import { BusUnavailableError } from '../../errors.js';
import { parseRevocation, revocationKey, type RevocationEntry, type RevocationStore } from '../../stores/store.js';

/** Expired entries one add removes at most (an add's work stays bounded). */
const PRUNE_BATCH = 100;

const ADD_SCRIPT = `
local old = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[4], 'LIMIT', 0, ${PRUNE_BATCH})
if #old > 0 then
  redis.call('HDEL', KEYS[1], unpack(old))
  redis.call('ZREM', KEYS[2], unpack(old))
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
return #old
`;

const LIST_SCRIPT = `
local keys = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. ARGV[1], '+inf')
if #keys == 0 then return {} end
return redis.call('HMGET', KEYS[1], unpack(keys))
`;

export class RedisRevocationStore implements RevocationStore {
  readonly kind = 'redis';
  private readonly hash: string;
  private readonly byUntil: string;

  constructor(
    private readonly redis: Redis,
    prefix: string,
  ) {
    this.hash = `${prefix}:revoked`;
    this.byUntil = `${prefix}:revoked:until`;
  }

  async add(entry: RevocationEntry): Promise<void> {
    const now = Date.now() / 1000;
    try {
      await this.redis.eval(ADD_SCRIPT, 2, this.hash, this.byUntil, revocationKey(entry), JSON.stringify(entry), entry.until, now);
    } catch (err) {
      throw unavailable(err);
    }
  }

  async list(): Promise<RevocationEntry[]> {
    let values: unknown;
    try {
      values = await this.redis.eval(LIST_SCRIPT, 2, this.hash, this.byUntil, Date.now() / 1000);
    } catch (err) {
      throw unavailable(err);
    }
    const out: RevocationEntry[] = [];
    for (const value of Array.isArray(values) ? values : []) {
      if (typeof value !== 'string') continue;
      let parsed: unknown;
      try {
        parsed = JSON.parse(value);
      } catch {
        continue;
      }
      const entry = parseRevocation(parsed);
      if (entry) out.push(entry);
    }
    return out;
  }
}

function unavailable(err: unknown): BusUnavailableError {
  if (err instanceof BusUnavailableError) return err;
  return new BusUnavailableError('the redis store did not take the revocation', { cause: err });
}
