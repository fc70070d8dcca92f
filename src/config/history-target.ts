/**
 * --history parsed once, at load, into where channel history, recovery and presence live. Only
 * stores that exist are accepted: memory, or one Redis (the Redis stores use a single-node
 * client, scripts over several keys and that Redis's pub/sub, none of which a Redis Cluster URL
 * gives; NATS and RabbitMQ keep nothing).
 */
import { ConfigError } from '../errors.js';
import type { BusAddress } from './bus-address.js';
import { checkRedisUrl } from './bus-address.js';

/** Where history, recovery and presence live. */
export type HistoryTarget =
  | { readonly kind: 'memory'; readonly describe: string }
  | {
      readonly kind: 'redis';
      /** The Redis URL, handed to ioredis as it is. */
      readonly url: string;
      /** The bus is this same Redis: channel payloads then travel over the bus itself. */
      readonly sameAsBus: boolean;
      /** The URL without credentials, for logs. */
      readonly describe: string;
    };

/** What the --history flag names, before the bus decides the default. */
export type HistorySource = { readonly kind: 'memory' } | { readonly kind: 'redis'; readonly url: string; readonly describe: string };

const HISTORY_EXPECTED =
  'expected memory or redis://host:port[/db] (history, recovery and presence live in memory or on one Redis; redis-cluster://, nats:// and amqp:// cannot hold them)';

/** Parses a --history value; throws a ConfigError naming the flag for anything but memory or one Redis. */
export function parseHistorySource(value: string, flag = '--history'): HistorySource {
  if (value === 'memory') return Object.freeze({ kind: 'memory' });
  if (!/^rediss?:\/\//i.test(value)) throw new ConfigError(flag, HISTORY_EXPECTED);
  return Object.freeze({ kind: 'redis', url: value, describe: checkRedisUrl(value, flag) });
}

/** The history target: --history when given, else the bus when it is one Redis, else memory. */
export function historyTarget(source: HistorySource | undefined, bus: BusAddress): HistoryTarget {
  const chosen = source ?? (bus.kind === 'redis' ? bus : { kind: 'memory' as const });
  if (chosen.kind === 'memory') return Object.freeze({ kind: 'memory', describe: 'memory' });
  const sameAsBus = bus.kind === 'redis' && bus.url === chosen.url;
  return Object.freeze({ kind: 'redis', url: chosen.url, sameAsBus, describe: chosen.describe });
}
