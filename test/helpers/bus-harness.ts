/**
 * The brokers the bus conformance suite (test/integration/bus-conformance.test.ts) runs against,
 * each as a {@link Harness} that makes adapters and takes its broker down and back up, and the
 * {@link Peer} that plays a node on one adapter.
 */
import type { Bus, BusStatus } from '../../src/stores/bus.js';
import { createBus } from '../../src/brokers/create-bus.js';
import { parseBusAddress } from '../../src/config/bus-address.js';
import { MemoryBroker, MemoryBus } from '../../src/brokers/memory/bus.js';
import { BrokerProcess, RedisClusterProcesses, startNatsServer, startRedisServer, systemRabbit } from '../../harness/brokers.js';
import { KafkaProcess } from '../../harness/kafka.js';
import { Changes, until } from '../../harness/wait.js';
import { AMQP_URL } from './brokers.js';

/** What the suite needs from a broker: adapters for it, and a way to take it down and bring it back. */
export interface Harness {
  readonly name: string;
  setup(): Promise<void>;
  teardown(): Promise<void>;
  /** The --bus URL (valid after setup). */
  url(): string;
  /** A new adapter on the broker. */
  create(): Bus;
  /** Takes the broker down (the adapters see it go). */
  down(): Promise<void>;
  /** Brings it back. */
  up(): Promise<void>;
  /** False for the memory bus: there is no broker process to be down when a bus connects. */
  readonly hasBrokerProcess: boolean;
  /** Shared in-process broker for memory-bus nodes. */
  readonly broker?: MemoryBroker;
}

function processHarness(name: string, start: () => Promise<BrokerProcess>, url: (port: number) => string): Harness {
  let proc: BrokerProcess | undefined;
  return {
    name,
    hasBrokerProcess: true,
    setup: async () => void (proc = await start()),
    teardown: async () => proc?.stop(),
    url: () => url(proc!.port),
    create: () => createBus(parseBusAddress(url(proc!.port))),
    down: () => proc!.stop('SIGKILL'),
    up: () => proc!.start(),
  };
}

function memoryHarness(): Harness {
  const broker = new MemoryBroker();
  const buses = new Set<MemoryBus>();
  return {
    name: 'memory',
    hasBrokerProcess: false,
    broker,
    setup: async () => {},
    teardown: async () => {},
    url: () => 'memory',
    create: () => {
      const bus = new MemoryBus(broker);
      buses.add(bus);
      return bus;
    },
    down: async () => {
      for (const bus of buses) if (bus.connected) bus.disconnect();
    },
    up: async () => {
      for (const bus of buses) bus.reconnect();
    },
  };
}

function redisClusterHarness(): Harness {
  let cluster: RedisClusterProcesses | undefined;
  return {
    name: 'redis-cluster',
    hasBrokerProcess: true,
    setup: async () => void (cluster = await RedisClusterProcesses.start(3)),
    teardown: async () => cluster?.stop(),
    url: () => cluster!.url,
    create: () => createBus(parseBusAddress(cluster!.url)),
    down: () => cluster!.down('SIGKILL'),
    up: () => cluster!.restart(),
  };
}

function amqpHarness(): Harness {
  return {
    name: 'amqp',
    hasBrokerProcess: true,
    setup: async () => {},
    teardown: async () => {},
    url: () => AMQP_URL,
    create: () => createBus(parseBusAddress(AMQP_URL)),
    down: () => systemRabbit.stop(),
    up: () => systemRabbit.start(),
  };
}

/** A private Kafka (scripts/kafka-dev.sh on free ports): down is a crash (SIGKILL), up a restart on the data it had. */
function kafkaHarness(): Harness {
  let kafka: KafkaProcess | undefined;
  return {
    name: 'kafka',
    hasBrokerProcess: true,
    setup: async () => void (kafka = await KafkaProcess.start()),
    teardown: async () => kafka?.destroy(),
    url: () => kafka!.url(),
    create: () => createBus(parseBusAddress(kafka!.url())),
    down: () => kafka!.kill(),
    up: () => kafka!.start(),
  };
}

/** Every bus the suite runs against, in order. */
export const harnesses: Harness[] = [
  memoryHarness(),
  processHarness('redis', startRedisServer, (port) => `redis://127.0.0.1:${port}`),
  redisClusterHarness(),
  processHarness('nats', startNatsServer, (port) => `nats://127.0.0.1:${port}`),
  amqpHarness(),
  kafkaHarness(),
];

/** A bus playing a node: records what it receives and its status changes, resubscribes like the node. */
export class Peer {
  readonly received: Array<{ topic: string; text: string }> = [];
  readonly statuses: BusStatus[] = [];
  readonly topics = new Set<string>();
  private readonly changes = new Changes();

  constructor(readonly bus: Bus) {
    bus.onMessage((topic, payload) => {
      this.received.push({ topic, text: payload.toString() });
      this.changes.notify();
    });
    bus.onStatus((status) => {
      this.statuses.push(status);
      // As the node does: after `connected`, subscribe every topic again.
      if (status === 'connected') for (const topic of this.topics) bus.subscribe(topic).catch(() => {});
      this.changes.notify();
    });
  }

  async subscribe(topic: string): Promise<void> {
    this.topics.add(topic);
    await this.bus.subscribe(topic);
  }

  async unsubscribe(topic: string): Promise<void> {
    this.topics.delete(topic);
    await this.bus.unsubscribe(topic);
  }

  texts(topic?: string): string[] {
    return this.received.filter((m) => topic === undefined || m.topic === topic).map((m) => m.text);
  }

  /** Waits until `predicate` holds, re-checked on every message and status (and every 200 ms: it may read other state). */
  until(predicate: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
    return until(predicate, {
      wake: this.changes,
      intervalMs: 200,
      timeoutMs,
      what: `${what} on ${this.bus.kind}`,
      detail: () => `got ${JSON.stringify(this.received.slice(-3))}, statuses ${this.statuses.join(',')}`,
    });
  }
}

export async function peers(harness: Harness, count: number): Promise<Peer[]> {
  const list: Peer[] = [];
  for (let i = 0; i < count; i++) {
    const peer = new Peer(harness.create());
    await peer.bus.connect();
    list.push(peer);
  }
  return list;
}

export async function closePeers(list: Peer[]): Promise<void> {
  await Promise.all(list.map((p) => p.bus.close()));
}

export function tcpSockets(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap').length;
}
