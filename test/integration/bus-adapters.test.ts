/**
 * What one adapter does that the conformance suite cannot ask of all: Redis Cluster resharding and failover,
 * NATS credentials in the URL, AMQP connections closed by the broker's operator.
 *
 * test-runner: rabbitmq (it closes every connection of the machine's RabbitMQ).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { test } from 'node:test';
import { promisify } from 'node:util';
import calculateSlot from 'cluster-key-slot';
import type { Bus, BusStatus } from '../../src/stores/bus.js';
import { createBus } from '../../src/brokers/create-bus.js';
import { parseBusAddress } from '../../src/config/bus-address.js';
import { BusUnavailableError, ConfigError } from '../../src/errors.js';
import { RedisClusterProcesses, startNatsServer } from '../../harness/brokers.js';
import { until } from '../../harness/wait.js';
import { AMQP_URL } from '../helpers/brokers.js';
import { uniquePrefix } from '../helpers/nodes.js';

const run = promisify(execFile);

/** A bus that resubscribes on `connected`, as the node does, and records what it gets. */
function node(bus: Bus, topics: string[]): { bus: Bus; got: string[]; statuses: BusStatus[] } {
  const got: string[] = [];
  const statuses: BusStatus[] = [];
  bus.onMessage((_topic, payload) => got.push(payload.toString()));
  bus.onStatus((status) => {
    statuses.push(status);
    if (status === 'connected') for (const t of topics) bus.subscribe(t).catch(() => {});
  });
  return { bus, got, statuses };
}

async function redisCli(port: number, ...args: string[]): Promise<string> {
  return (await run('redis-cli', ['-p', String(port), ...args])).stdout.trim();
}

test('redis-cluster: when a topic\'s slot moves to another master, delivery follows it', { timeout: 90_000 }, async () => {
  const cluster = await RedisClusterProcesses.start(3);
  const topic = `${uniquePrefix('reshard')}:echo`;
  const a = node(createBus(parseBusAddress(cluster.url)), [topic]);
  const b = node(createBus(parseBusAddress(cluster.url)), [topic]);
  try {
    await a.bus.connect();
    await b.bus.connect();
    await a.bus.subscribe(topic);
    await b.bus.subscribe(topic);
    await a.bus.publish(topic, Buffer.from('before'));
    await until(() => b.got.includes('before'), { timeoutMs: 20_000, what: 'delivery before the move' });

    // Move the topic's slot (no keys in it) from its owner to another master, as resharding does.
    const slot = calculateSlot(topic);
    const ids = new Map<number, string>();
    for (const n of cluster.nodes) ids.set(n.port, await redisCli(n.port, 'cluster', 'myid'));
    const from = await ownerOf(cluster, slot);
    const to = cluster.nodes.find((n) => n.port !== from)!.port;
    await redisCli(to, 'cluster', 'setslot', String(slot), 'importing', ids.get(from)!);
    await redisCli(from, 'cluster', 'setslot', String(slot), 'migrating', ids.get(to)!);
    for (const n of cluster.nodes) await redisCli(n.port, 'cluster', 'setslot', String(slot), 'node', ids.get(to)!);
    assert.equal(await ownerOf(cluster, slot), to);

    // The adapters notice the new layout (slot refresh every 2 s), cycle their status, and the
    // resubscribe lands on the new owner.
    await until(() => a.statuses.includes('disconnected') && b.statuses.includes('disconnected'), { timeoutMs: 20_000, what: 'the layout change' });
    await until(() => a.bus.connected && b.bus.connected, { timeoutMs: 20_000, what: 'connected again' });
    let i = 0;
    while (!b.got.some((m) => m.startsWith('after'))) {
      await a.bus.publish(topic, Buffer.from(`after ${i++}`)).catch(() => {});
      await new Promise((r) => setTimeout(r, 100));
      assert.ok(i < 100, 'delivery did not follow the slot within 10 s');
    }
    const subscribers = await redisCli(to, 'pubsub', 'shardnumsub', topic);
    assert.match(subscribers, new RegExp(`${topic}\\s+2`), 'both nodes subscribed on the new owner');
  } finally {
    await a.bus.close();
    await b.bus.close();
    await cluster.stop();
  }
});

test('redis-cluster: when a master dies and its replica takes over, delivery follows the failover', { timeout: 90_000 }, async () => {
  const cluster = await RedisClusterProcesses.start(3, 1);
  const topic = `${uniquePrefix('failover')}:echo`;
  const a = node(createBus(parseBusAddress(cluster.url)), [topic]);
  const b = node(createBus(parseBusAddress(cluster.url)), [topic]);
  try {
    await a.bus.connect();
    await b.bus.connect();
    await a.bus.subscribe(topic);
    await b.bus.subscribe(topic);
    await a.bus.publish(topic, Buffer.from('before'));
    await until(() => b.got.includes('before'), { timeoutMs: 20_000, what: 'delivery before the failover' });

    const slot = calculateSlot(topic);
    const master = await ownerOf(cluster, slot);
    await cluster.nodes.find((n) => n.port === master)!.stop('SIGKILL');
    await until(() => !a.bus.connected && !b.bus.connected, { timeoutMs: 20_000, what: 'the lost master' });
    await assert.rejects(a.bus.publish(topic, Buffer.from('lost')), BusUnavailableError);

    // The replica is promoted (cluster-node-timeout 2 s); the adapters see the new layout, connect
    // to the new master, and the resubscribe lands there.
    await cluster.waitHealthy(30_000);
    await until(() => a.bus.connected && b.bus.connected, { timeoutMs: 30_000, what: 'connected to the promoted replica' });
    const promoted = await ownerOf(cluster, slot);
    assert.notEqual(promoted, master);
    let i = 0;
    while (!b.got.some((m) => m.startsWith('after'))) {
      await a.bus.publish(topic, Buffer.from(`after ${i++}`)).catch(() => {});
      await new Promise((r) => setTimeout(r, 100));
      assert.ok(i < 100, 'delivery did not follow the failover within 10 s');
    }
    assert.ok(!b.got.includes('lost'));
  } finally {
    await a.bus.close();
    await b.bus.close();
    await cluster.stop();
  }
});

/** The port of the master that owns `slot`, as the first running node sees it. */
async function ownerOf(cluster: RedisClusterProcesses, slot: number): Promise<number> {
  const asker = cluster.nodes.find((n) => n.running)!;
  const out = await redisCli(asker.port, 'cluster', 'slots');
  // redis-cli prints CLUSTER SLOTS flat: start, end, host, port, id, [replicas…], start, …
  const lines = out.split('\n');
  for (let i = 0; i + 3 < lines.length; i++) {
    const [start, end, host, port] = lines.slice(i, i + 4).map((l) => l.trim());
    if (host === '127.0.0.1' && /^\d+$/.test(start!) && /^\d+$/.test(end!) && Number(start) <= slot && slot <= Number(end)) return Number(port);
  }
  throw new Error(`no owner for slot ${slot} in ${out}`);
}

test('nats: credentials in the URL reach the server; wrong ones are refused', { timeout: 30_000 }, async () => {
  const server = await startNatsServer(['--user', 'fanout', '--pass', 's3cret']);
  const { port } = server;
  const good = createBus(parseBusAddress(`nats://fanout:s3cret@127.0.0.1:${port}`));
  const bad = createBus(parseBusAddress(`nats://fanout:wrong@127.0.0.1:${port}`));
  try {
    const n = node(good, []);
    await good.connect();
    const topic = `${uniquePrefix('auth')}:echo`;
    await good.subscribe(topic);
    await good.publish(topic, Buffer.from('authorised'));
    await until(() => n.got.includes('authorised'), { timeoutMs: 20_000, what: 'own message' });
    // Refused credentials cannot heal by retrying: a configuration error naming --bus (serve exits 2 on it).
    await assert.rejects(bad.connect(), (err: unknown) => err instanceof ConfigError && /--bus/.test(err.message) && /Authorization Violation/.test(err.message));
    assert.equal(bad.connected, false);
  } finally {
    await good.close();
    await bad.close();
    await server.stop();
  }
});

test('amqp: connections closed by the operator come back, with their bindings', { timeout: 60_000 }, async () => {
  const topic = `${uniquePrefix('amqpclose')}:echo`;
  const a = node(createBus(parseBusAddress(AMQP_URL)), [topic]);
  const b = node(createBus(parseBusAddress(AMQP_URL)), [topic]);
  try {
    await a.bus.connect();
    await b.bus.connect();
    await b.bus.subscribe(topic);
    await a.bus.publish(topic, Buffer.from('before'));
    await until(() => b.got.includes('before'), { timeoutMs: 20_000, what: 'delivery before' });
    await run('rabbitmqctl', ['close_all_connections', 'fanout test'], { timeout: 30_000 });
    await until(() => b.statuses.includes('disconnected'), { timeoutMs: 20_000, what: 'the close' });
    await until(() => a.bus.connected && b.bus.connected, { timeoutMs: 20_000, what: 'connected again' });
    let i = 0;
    while (!b.got.some((m) => m.startsWith('after'))) {
      await a.bus.publish(topic, Buffer.from(`after ${i++}`)).catch(() => {});
      await new Promise((r) => setTimeout(r, 100));
      assert.ok(i < 100, 'delivery did not resume within 10 s');
    }
  } finally {
    await a.bus.close();
    await b.bus.close();
  }
});
