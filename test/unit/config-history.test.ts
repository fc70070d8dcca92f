// Where channel history lives (--history, or the bus when it can hold it), what a bus that cannot
// hold it makes the node say, and that every bus and history the schema accepts builds. The flags
// themselves: config.test.ts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Redis } from 'ioredis';
import { expectRejected } from '../helpers/config.js';
import { createBus } from '../../src/brokers/create-bus.js';
import { MemoryBroker } from '../../src/brokers/memory/bus.js';
import { createConfig, loadServeConfig } from '../../src/config/load.js';
import { type Config } from '../../src/config/schema.js';
import { checkClusterHistory } from '../../src/config/history-target.js';
import { ConfigError } from '../../src/errors.js';
import { MemoryChannelStore, MemoryPresenceStore } from '../../src/brokers/memory/stores.js';
import { RedisChannelStore, withScripts } from '../../src/brokers/redis/stores.js';
import { KafkaLog } from '../../src/brokers/kafka/log.js';
import { JetStreamLog } from '../../src/brokers/nats/jetstream.js';
import { createLogger } from '../../src/logger.js';

test('--history nats:// is JetStream history, the same NATS as the bus when the servers match', () => {
  const same = createConfig({ bus: 'nats://127.0.0.1:4222', history: 'nats://u:p@127.0.0.1:4222' }).history;
  assert.equal(same.kind, 'nats');
  assert.equal(same.kind === 'nats' && same.sameAsBus, true);
  assert.equal(same.describe, 'nats://127.0.0.1:4222');
  const other = createConfig({ bus: 'redis://127.0.0.1:6379', history: 'nats://127.0.0.1:4222,127.0.0.1:4223' }).history;
  assert.deepEqual(other.kind === 'nats' && [other.sameAsBus, other.address.servers], [false, ['nats://127.0.0.1:4222', 'nats://127.0.0.1:4223']]);
});

test('the history target: --history, else the bus when it is one Redis, else memory', () => {
  const redis = 'redis://app:pw@127.0.0.1:6379/2';
  assert.deepEqual(createConfig({ bus: redis }).history, { kind: 'redis', url: redis, sameAsBus: true, describe: 'redis://127.0.0.1:6379/2' });
  assert.deepEqual(createConfig({ bus: redis, history: redis }).history, { kind: 'redis', url: redis, sameAsBus: true, describe: 'redis://127.0.0.1:6379/2' });
  assert.deepEqual(createConfig({ bus: redis, history: 'memory' }).history, { kind: 'memory', describe: 'memory' });
  assert.deepEqual(createConfig({ bus: 'nats://127.0.0.1:4222', history: 'redis://127.0.0.1:6380' }).history, {
    kind: 'redis',
    url: 'redis://127.0.0.1:6380',
    sameAsBus: false,
    describe: 'redis://127.0.0.1:6380',
  });
  assert.deepEqual(createConfig({ bus: 'memory' }).history, { kind: 'memory', describe: 'memory' });
  assert.deepEqual(createConfig({}).history, { kind: 'memory', describe: 'memory' });
});

test('the history default follows a bus that can hold it: NATS holds history and presence in JetStream', () => {
  const nats = createConfig({ bus: 'nats://app:pw@127.0.0.1:4222,127.0.0.1:4223' });
  assert.deepEqual(nats.history, { kind: 'nats', address: nats.bus, sameAsBus: true, describe: 'nats://127.0.0.1:4222,nats://127.0.0.1:4223' });
  // Given explicitly: the same target; another NATS than the bus is not the bus.
  assert.deepEqual(createConfig({ bus: 'nats://127.0.0.1:4222', history: 'nats://127.0.0.1:4222' }).history, createConfig({ bus: 'nats://127.0.0.1:4222' }).history);
  const other = createConfig({ bus: 'nats://127.0.0.1:4222', history: 'nats://tok@10.0.0.5:4222' }).history;
  assert.equal(other.kind, 'nats');
  assert.equal(other.kind === 'nats' && other.sameAsBus, false);
  assert.equal(other.kind === 'nats' && other.address.token, 'tok');
  assert.equal(other.describe, 'nats://10.0.0.5:4222');
  // NATS history under another bus.
  assert.equal(createConfig({ bus: 'redis://127.0.0.1:6379', history: 'nats://127.0.0.1:4222' }).history.kind, 'nats');
});

test('a bus that cannot hold history and no --history: refused at start with one line saying what to add', () => {
  for (const [bus, scheme] of [
    ['amqp://g:g@127.0.0.1:5672', 'amqp'],
    ['amqps://g:g@broker.example:5671/vh', 'amqps'],
    ['redis-cluster://127.0.0.1:7000,127.0.0.1:7001', 'redis-cluster'],
  ] as const) {
    assert.throws(
      () => createConfig({ bus }),
      (err: unknown) =>
        err instanceof ConfigError &&
        err.flag === '--history' &&
        err.message ===
          `invalid --history: missing: the ${scheme}:// bus cannot hold channel history, recovery or presence; add --history redis://host:port (shared by the nodes) or --history memory (each node its own)`,
      bus,
    );
    // Asked for: per-node history, or a shared Redis.
    assert.deepEqual(createConfig({ bus, history: 'memory' }).history, { kind: 'memory', describe: 'memory' }, bus);
    assert.equal(createConfig({ bus, history: 'redis://127.0.0.1:6379' }).history.kind, 'redis', bus);
  }
  // Kafka: history on the bus's own Kafka (a topic beside the bus topic), or where asked.
  assert.deepEqual(createConfig({ bus: 'kafka://127.0.0.1:9092/events' }).history, {
    kind: 'kafka',
    address: { kind: 'kafka', brokers: ['127.0.0.1:9092'], topic: 'events', describe: 'kafka://127.0.0.1:9092/events' },
    sameAsBus: true,
    describe: 'kafka://127.0.0.1:9092/events',
  });
  assert.equal(createConfig({ bus: 'kafka://127.0.0.1:9092', history: 'redis://127.0.0.1:6379' }).history.kind, 'redis');
  const kafkaHistory = createConfig({ bus: 'redis://127.0.0.1:6379', history: 'kafka://k1:9093,k2' }).history;
  assert.equal(kafkaHistory.kind === 'kafka' && kafkaHistory.sameAsBus, false);
  assert.equal(kafkaHistory.describe, 'kafka://k1:9093,k2:9092/fanout');
  expectRejected({ history: 'kafka://user:pw@k1' }, '--history', /kafka:\/\/ takes no credentials/);
  // From the environment too, and the same line from the CLI's loader.
  assert.throws(() => loadServeConfig([], { FANOUT_BUS: 'amqp://g:g@h:5672' }), /^ConfigError: invalid --history: missing: the amqp:\/\/ bus cannot hold/);
  assert.equal(loadServeConfig(['--bus', 'amqp://g:g@h:5672'], { FANOUT_HISTORY: 'memory' }).history.kind, 'memory');
});

test('fanout cluster: per-node history with several nodes on a shared bus is refused, saying what to give', () => {
  const check = (bus: string, history: string | undefined, nodes: number) => {
    const config = createConfig({ bus, ...(history ? { history } : {}) });
    checkClusterHistory(config.history, config.bus, nodes);
  };
  const refused = (bus: string, nodes: number, line: string) =>
    assert.throws(() => check(bus, 'memory', nodes), (err: unknown) => err instanceof ConfigError && err.flag === '--history' && err.message === line, bus);
  refused('nats://127.0.0.1:4222', 2, 'invalid --history: memory keeps history and presence per node, which breaks a chat across 2 nodes; leave --history out (the nats:// bus holds them) or give --history redis://host:port');
  refused('redis://127.0.0.1:6379', 3, 'invalid --history: memory keeps history and presence per node, which breaks a chat across 3 nodes; leave --history out (the redis:// bus holds them) or give --history redis://host:port');
  refused('amqp://g:g@127.0.0.1:5672', 2, 'invalid --history: memory keeps history and presence per node, which breaks a chat across 2 nodes; give --history redis://host:port');
  // Shared history, one node, or the memory bus (one process, one store): allowed.
  check('nats://127.0.0.1:4222', undefined, 2);
  check('redis://127.0.0.1:6379', undefined, 2);
  check('amqp://g:g@127.0.0.1:5672', 'redis://127.0.0.1:6379', 2);
  check('redis-cluster://127.0.0.1:7000', 'nats://127.0.0.1:4222', 2);
  check('amqp://g:g@127.0.0.1:5672', 'memory', 1);
  check('memory', 'memory', 1);
});

async function buildBusAndStores(config: Config): Promise<void> {
  const bus = createBus(config.bus, { broker: new MemoryBroker() });
  try {
    assert.equal(bus.kind, config.bus.kind);
    const history = config.history;
    // Only the memory bus is connected: the others would need their broker.
    if (bus.kind === 'memory') {
      await bus.connect();
      assert.equal(bus.connected, true);
    }
    if (history.kind === 'memory') {
      const owner = {};
      const delivered: string[] = [];
      const channels = new MemoryChannelStore(owner, {
        historySize: config.historySize,
        historyTtl: config.historyTtl,
        historyMaxBytes: config.historyMaxBytes,
        connected: () => true,
        deliver: (topic) => void delivered.push(topic),
      });
      const position = await channels.publish({ channel: 'room', topic: 'fanout:ch:room', origin: config.nodeId, data: '"hi"' });
      assert.equal(position.offset, 1);
      assert.deepEqual(delivered, ['fanout:ch:room']);
      assert.deepEqual((await channels.read('room')).messages, [{ offset: 1, data: '"hi"' }]);
      const presence = new MemoryPresenceStore(owner, config.nodeId);
      await presence.join('room', { client: 'c1', user: 'alice' });
      assert.equal((await presence.list('room')).length, 1);
    } else if (history.kind === 'nats') {
      // Built, not connected.
      const log = new JetStreamLog({
        address: history.address,
        prefix: config.busPrefix,
        nodeId: config.nodeId,
        historySize: config.historySize,
        historyTtl: config.historyTtl,
        channelOf: (topic) => topic,
        logger: createLogger('silent'),
      });
      assert.equal(log.layout.stream, `FANOUT_${config.busPrefix}`);
      await log.close();
    } else if (history.kind === 'kafka') {
      // Built, not connected.
      const log = new KafkaLog({
        address: history.address,
        nodeId: config.nodeId,
        historySize: config.historySize,
        historyTtl: config.historyTtl,
        channelOf: (topic) => topic,
        topicOf: (channel) => channel,
        logger: createLogger('silent'),
      });
      assert.equal(log.topic, `${history.address.topic}.channels`);
      await log.close();
    } else {
      // Built, not connected: ioredis takes the URL as it is (lazyConnect, so no broker is needed).
      const redis = withScripts(new Redis(history.url, { lazyConnect: true }));
      const channels = new RedisChannelStore(redis, { prefix: config.busPrefix, historySize: config.historySize, historyTtl: config.historyTtl });
      await channels.close();
      redis.disconnect();
    }
  } finally {
    await bus.close();
  }
}

test("createConfig()'s default config builds a bus and stores that work", async () => {
  await buildBusAndStores(createConfig());
});

test('every bus and history the schema accepts builds without throwing', async () => {
  for (const options of [
    { bus: 'redis://127.0.0.1:6379' },
    { bus: 'rediss://u:p@127.0.0.1:6380/1', history: 'memory' },
    { bus: 'redis-cluster://127.0.0.1:7000,127.0.0.1:7001', history: 'memory' },
    { bus: 'nats://u:p@127.0.0.1:4222' },
    { bus: 'nats://u:p@127.0.0.1:4222', history: 'redis://127.0.0.1:6379/3' },
    { bus: 'amqps://u:p@broker.example:5671/vh', history: 'redis://127.0.0.1:6379' },
    { bus: 'nats://127.0.0.1:4222', history: 'nats://u:p@127.0.0.1:4222' },
  ]) {
    await buildBusAndStores(createConfig(options));
  }
});
