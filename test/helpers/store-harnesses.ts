/**
 * The stores the store conformance suite runs against (test/helpers/store-conformance.ts):
 * memory, Redis as the bus, Redis as a separate `--history`, JetStream and Kafka. Each says which
 * store kinds it implements beside the channel store, gives node specs on the shared broker
 * (helpers/store-nodes.ts), the flags of real nodes on it, and, for a broker, a fault rig: a
 * private broker (so killing it disturbs no other test) with a TCP proxy in front of it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryBroker } from '../../src/brokers/memory/bus.js';
import { BrokerProcess, NATS_READY, startRedisServer } from '../../harness/brokers.js';
import type { KafkaProcess } from '../../harness/kafka.js';
import { freePort } from '../../harness/ports.js';
import { NATS_URL, REDIS_URL } from './brokers.js';
import { uniquePrefix, type ConfigInput } from './nodes.js';
import { startProxiedKafka } from './proxied-kafka.js';
import type { StoreSpec, StoreWhere } from './store-nodes.js';
import { TcpProxy } from './tcp-proxy.js';

/** The shared Kafka (scripts/kafka-dev.sh start). */
const KAFKA = '127.0.0.1:9092';

/** The limits a spec may set (each distinct set gets a prefix of its own: JetStream keeps them per stream). */
export interface Limits {
  readonly historySize: number;
  readonly historyTtl: number;
  readonly presenceTtl: number;
  /** The longest idempotency window the node serves (the JetStream stream's duplicate window); default 300. */
  readonly idempotencyWindow?: number;
}

const DEFAULT_LIMITS: Limits = { historySize: 100, historyTtl: 300, presenceTtl: 1 };

/** A private broker behind a proxy: nodes on `spec('proxied')` reach it through `proxy`, the others directly. */
export interface FaultRig {
  spec(link: 'direct' | 'proxied', limits?: Partial<Limits>): StoreSpec;
  readonly proxy: TcpProxy;
  /** Kills the broker (a crash: SIGKILL). */
  down(): Promise<void>;
  /** Starts it again on the data it had. */
  up(): Promise<void>;
  close(): Promise<void>;
}

export interface StoreHarness {
  readonly name: string;
  /** A presence store: join/leave/list. */
  readonly presence: boolean;
  /** A dead node's presence (and counts) are swept: false where a node cannot die without its clients closing. */
  readonly sweeps: boolean;
  /** A cluster-wide occupancy store (--webhook). */
  readonly occupancy: boolean;
  setup(): Promise<void>;
  teardown(): Promise<void>;
  /** A node spec on the shared broker. */
  spec(limits?: Partial<Limits>): StoreSpec;
  /** Flags of a real node on this store, and the memory broker its in-process nodes share. */
  node(prefix: string): { readonly config: ConfigInput; readonly broker?: MemoryBroker };
  /** A private broker to kill and cut; undefined for the memory store (no broker process). */
  faults?(): Promise<FaultRig>;
}

/** Specs for one harness: the same limits get the same prefix, so nodes opened with them share a channel space. */
function specs(base: StoreWhere, tag: string): (limits?: Partial<Limits>) => StoreSpec {
  const prefixes = new Map<string, string>();
  return (limits = {}) => {
    const all = { ...DEFAULT_LIMITS, ...limits };
    const key = JSON.stringify(all);
    let prefix = prefixes.get(key);
    if (!prefix) prefixes.set(key, (prefix = uniquePrefix(tag)));
    return { ...base, ...all, prefix };
  };
}

function memoryHarness(): StoreHarness {
  const broker = new MemoryBroker();
  const name = uniquePrefix('memory');
  return {
    name: 'memory',
    presence: true,
    sweeps: false,
    occupancy: true,
    setup: async () => {},
    teardown: async () => {},
    spec: specs({ kind: 'memory', broker: name }, 'scm'),
    node: (prefix) => ({ config: { bus: 'memory', busPrefix: prefix }, broker }),
  };
}

/** A redis-server of our own with an append-only file (a crash keeps every acknowledged write), behind a proxy. */
async function redisRig(): Promise<FaultRig> {
  const server = await startRedisServer({ persistent: true });
  const proxy = await TcpProxy.start(server.port);
  const direct = specs({ kind: 'redis', url: server.url }, 'scr');
  return {
    proxy,
    spec: (link, limits) => {
      const spec = direct(limits);
      return link === 'direct' ? spec : { ...spec, url: `redis://127.0.0.1:${proxy.port}` };
    },
    down: () => server.stop('SIGKILL'),
    up: () => server.start(),
    close: async () => {
      await proxy.close();
      await server.destroy();
    },
  };
}

/**
 * Redis as the bus and as a separate --history are one store (the same code on one Redis); they
 * differ in the route real nodes take. The fault rig (a private Redis) runs with the first only:
 * twice would test the same thing twice.
 */
function redisHarness(name: string, config: (prefix: string) => ConfigInput, withFaults: boolean): StoreHarness {
  return {
    name,
    presence: true,
    sweeps: true,
    occupancy: true,
    setup: async () => {},
    teardown: async () => {},
    spec: specs({ kind: 'redis', url: REDIS_URL }, 'scr'),
    node: (prefix) => ({ config: config(prefix) }),
    ...(withFaults ? { faults: redisRig } : {}),
  };
}

/** A nats-server of our own with JetStream and a store folder that survives a crash, behind a proxy. */
async function natsRig(): Promise<FaultRig> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'fanout-js-'));
  const server = new BrokerProcess('nats-server', port, 'nats-server', ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', dir], { url: `nats://127.0.0.1:${port}`, ready: NATS_READY, dir });
  await server.start();
  const proxy = await TcpProxy.start(port);
  const direct = specs({ kind: 'jetstream', url: server.url }, 'scj');
  return {
    proxy,
    spec: (link, limits) => {
      const spec = direct(limits);
      return link === 'direct' ? spec : { ...spec, url: `nats://127.0.0.1:${proxy.port}` };
    },
    down: () => server.stop('SIGKILL'),
    up: () => server.start(),
    close: async () => {
      await proxy.close();
      await server.destroy();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function jetStreamHarness(): StoreHarness {
  return {
    name: 'jetstream',
    presence: true,
    sweeps: true,
    occupancy: false,
    setup: async () => {},
    teardown: async () => {},
    spec: specs({ kind: 'jetstream', url: NATS_URL }, 'scj'),
    node: (prefix) => ({ config: { bus: NATS_URL, history: NATS_URL, busPrefix: prefix } }),
    faults: natsRig,
  };
}

/** A Kafka broker of our own (harness/kafka.ts) whose second listener is behind the proxy. */
async function kafkaRig(): Promise<FaultRig> {
  const broker = await startProxiedKafka();
  const kafka: KafkaProcess = broker.kafka;
  const topic = uniquePrefix('sck');
  const direct = specs({ kind: 'kafka', url: kafka.url(topic) }, 'sck');
  return {
    proxy: broker.proxy,
    spec: (link, limits) => {
      const spec = direct(limits);
      return link === 'direct' ? spec : { ...spec, url: kafka.proxiedUrl(topic) };
    },
    down: () => kafka.kill(),
    up: () => kafka.start(),
    close: () => broker.destroy(),
  };
}

function kafkaHarness(): StoreHarness {
  // One topic for the suite on the shared broker: channels of one topic are apart by prefix.
  const topic = uniquePrefix('sck');
  return {
    name: 'kafka',
    presence: true,
    sweeps: true,
    occupancy: false,
    setup: async () => {},
    teardown: async () => {},
    spec: specs({ kind: 'kafka', url: `kafka://${KAFKA}/${topic}` }, 'sck'),
    node: (prefix) => ({ config: { bus: `kafka://${KAFKA}/${topic}-n`, busPrefix: prefix } }),
    faults: kafkaRig,
  };
}

/** Every store, in the order the suite runs them. */
export function storeHarnesses(): StoreHarness[] {
  return [
    memoryHarness(),
    redisHarness('redis (the bus)', (prefix) => ({ bus: REDIS_URL, busPrefix: prefix }), true),
    redisHarness('redis (a separate --history)', (prefix) => ({ bus: NATS_URL, history: REDIS_URL, busPrefix: prefix }), false),
    jetStreamHarness(),
    kafkaHarness(),
  ];
}
