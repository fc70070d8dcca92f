/**
 * --history parsed once, at load, into where channel history, recovery and presence live. Only
 * stores that exist are accepted: memory, one Redis (the Redis stores use a single-node client,
 * scripts over several keys and that Redis's pub/sub, none of which a Redis Cluster URL gives),
 * or NATS JetStream (a stream per --bus-prefix, history/jetstream.ts). RabbitMQ keeps nothing.
 */
import { ConfigError } from '../errors.js';
import type { BusAddress, NatsAddress } from './bus-address.js';
import { checkRedisUrl, parseNatsUrl } from './bus-address.js';

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
    }
  | {
      readonly kind: 'nats';
      /** The NATS servers and credentials, parsed as for --bus. */
      readonly address: NatsAddress;
      /** The bus is this same NATS (same servers). */
      readonly sameAsBus: boolean;
      /** The servers without credentials, for logs. */
      readonly describe: string;
    };

/** What the --history flag names, before the bus decides the default. */
export type HistorySource =
  | { readonly kind: 'memory' }
  | { readonly kind: 'redis'; readonly url: string; readonly describe: string }
  | (NatsAddress & { readonly kind: 'nats' });

const HISTORY_EXPECTED =
  'expected memory, redis://host:port[/db] or nats://host:port[,host:port] (history, recovery and presence live in memory, on one Redis or in NATS JetStream; redis-cluster:// and amqp:// cannot hold them)';

/** Parses a --history value; throws a ConfigError naming the flag for anything but memory, one Redis or NATS. */
export function parseHistorySource(value: string, flag = '--history'): HistorySource {
  if (value === 'memory') return Object.freeze({ kind: 'memory' });
  if (/^nats:\/\//i.test(value)) return parseNatsUrl(value, flag);
  if (!/^rediss?:\/\//i.test(value)) throw new ConfigError(flag, HISTORY_EXPECTED);
  return Object.freeze({ kind: 'redis', url: value, describe: checkRedisUrl(value, flag) });
}

/** True when two NATS addresses name the same servers (credentials aside). */
function sameNats(a: NatsAddress, b: BusAddress): boolean {
  return b.kind === 'nats' && a.servers.length === b.servers.length && a.servers.every((s, i) => s === b.servers[i]);
}

/** The history target: --history when given, else the bus when it is one Redis, else memory. */
export function historyTarget(source: HistorySource | undefined, bus: BusAddress): HistoryTarget {
  const chosen = source ?? (bus.kind === 'redis' ? bus : { kind: 'memory' as const });
  if (chosen.kind === 'memory') return Object.freeze({ kind: 'memory', describe: 'memory' });
  if (chosen.kind === 'nats') return Object.freeze({ kind: 'nats', address: chosen, sameAsBus: sameNats(chosen, bus), describe: chosen.describe });
  const sameAsBus = bus.kind === 'redis' && bus.url === chosen.url;
  return Object.freeze({ kind: 'redis', url: chosen.url, sameAsBus, describe: chosen.describe });
}
