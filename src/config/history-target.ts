/**
 * --history parsed once, at load, into where channel history, recovery and presence live:
 * memory, one Redis, NATS JetStream (`nats://`) or Kafka (`kafka://`). Only stores that exist are accepted (the
 * Redis stores use a single-node client, scripts over several keys and that Redis's pub/sub,
 * none of which a Redis Cluster URL gives; RabbitMQ keeps nothing).
 *
 * The default follows the bus when the bus can hold history (memory, Redis, NATS, Kafka). A bus that
 * cannot (redis-cluster://, amqp://, and any other) gets no silent per-node default: the node
 * refuses to start and says what to add. Per-node history with a shared bus is allowed when
 * asked for with --history memory.
 */
import { ConfigError } from '../errors.js';
import type { BusAddress, KafkaAddress, NatsAddress } from './bus-address.js';
import { checkRedisUrl, parseKafkaUrl, parseNatsUrl } from './bus-address.js';

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
      /** The NATS servers and credentials (parsed as --bus nats://… is). */
      readonly address: NatsAddress;
      /** The bus is this same NATS. */
      readonly sameAsBus: boolean;
      /** The servers without credentials, for logs. */
      readonly describe: string;
    }
  | {
      readonly kind: 'kafka';
      /** The brokers, and the bus topic the history topic is named after (brokers/kafka/log.ts). */
      readonly address: KafkaAddress;
      /** The bus is this same Kafka. */
      readonly sameAsBus: boolean;
      readonly describe: string;
    };

/** What the --history flag names, before the bus decides the default. */
export type HistorySource =
  | { readonly kind: 'memory' }
  | { readonly kind: 'redis'; readonly url: string; readonly describe: string }
  | { readonly kind: 'nats'; readonly address: NatsAddress }
  | { readonly kind: 'kafka'; readonly address: KafkaAddress };

const HISTORY_EXPECTED =
  'expected memory, redis://host:port[/db], nats://host:port or kafka://host:port[/topic] (history, recovery and presence live in memory, on one Redis, in NATS JetStream or in Kafka; redis-cluster:// and amqp:// cannot hold them)';

/** Parses a --history value; throws a ConfigError naming the flag for anything but memory, one Redis, NATS or Kafka. */
export function parseHistorySource(value: string, flag = '--history'): HistorySource {
  if (value === 'memory') return Object.freeze({ kind: 'memory' });
  if (/^nats:\/\//i.test(value)) return Object.freeze({ kind: 'nats', address: parseNatsUrl(value, flag) });
  if (/^kafka:\/\//i.test(value)) return Object.freeze({ kind: 'kafka', address: parseKafkaUrl(value, flag) });
  if (!/^rediss?:\/\//i.test(value)) throw new ConfigError(flag, HISTORY_EXPECTED);
  return Object.freeze({ kind: 'redis', url: value, describe: checkRedisUrl(value, flag) });
}

/** The --history a bus that cannot hold history needs, missing: what `fanout cluster` answers differently. */
export class HistoryMissingError extends ConfigError {
  /** The bus's scheme, `amqp` or `redis-cluster`. */
  readonly scheme: string;
  constructor(scheme: string) {
    super(
      '--history',
      `missing: the ${scheme}:// bus cannot hold channel history, recovery or presence; add --history redis://host:port (shared by the nodes) or --history memory (each node its own)`,
    );
    this.scheme = scheme;
  }
}

/** The --history a bus that cannot hold history needs: the one line a node refuses to start with. */
export function historyMissing(bus: BusAddress): HistoryMissingError {
  return new HistoryMissingError(bus.describe.replace(/:\/\/.*$/, ''));
}

/**
 * The same, for `fanout cluster` with 2+ nodes: only stores the nodes share work there
 * (per-node memory history is refused by {@link checkClusterHistory}), so only they are suggested.
 */
export function clusterHistoryMissing(missing: HistoryMissingError): ConfigError {
  return new ConfigError(
    '--history',
    `missing: the ${missing.scheme}:// bus cannot hold channel history, recovery or presence, and the nodes must share them; add --history redis://host:port (or nats://host:port with JetStream, or kafka://host:port)`,
  );
}

/**
 * The history target: --history when given, else the bus when it can hold history (memory,
 * one Redis, NATS, Kafka); any other bus throws {@link historyMissing}.
 */
export function historyTarget(source: HistorySource | undefined, bus: BusAddress): HistoryTarget {
  const chosen = source ?? defaultSource(bus);
  switch (chosen.kind) {
    case 'memory':
      return Object.freeze({ kind: 'memory', describe: 'memory' });
    case 'redis':
      return Object.freeze({ kind: 'redis', url: chosen.url, sameAsBus: bus.kind === 'redis' && bus.url === chosen.url, describe: chosen.describe });
    case 'nats':
      return Object.freeze({ kind: 'nats', address: chosen.address, sameAsBus: bus.kind === 'nats' && bus.describe === chosen.address.describe, describe: chosen.address.describe });
    case 'kafka':
      return Object.freeze({ kind: 'kafka', address: chosen.address, sameAsBus: bus.kind === 'kafka' && bus.describe === chosen.address.describe, describe: chosen.address.describe });
  }
}

/**
 * `fanout cluster`: the nodes of one cluster must share history, recovery and presence. Per-node
 * history (--history memory) with more than one node is refused, saying what to give instead.
 */
export function checkClusterHistory(history: HistoryTarget, bus: BusAddress, nodes: number): void {
  if (history.kind !== 'memory' || bus.kind === 'memory' || nodes < 2) return;
  let holds = true;
  try {
    defaultSource(bus);
  } catch {
    holds = false;
  }
  const scheme = bus.describe.replace(/:\/\/.*$/, '');
  throw new ConfigError(
    '--history',
    `memory keeps history and presence per node, which breaks a chat across ${nodes} nodes; ${holds ? `leave --history out (the ${scheme}:// bus holds them) or give` : 'give'} --history redis://host:port`,
  );
}

function defaultSource(bus: BusAddress): HistorySource {
  switch (bus.kind) {
    case 'memory':
      return { kind: 'memory' };
    case 'redis':
      return bus;
    case 'nats':
      return { kind: 'nats', address: bus };
    case 'kafka':
      return { kind: 'kafka', address: bus };
    default:
      throw historyMissing(bus);
  }
}
