/**
 * Fault cases of the channel store contract (history/store.ts), run unchanged against every store
 * with its real broker: memory, Redis, JetStream and Kafka. Several store instances play the nodes
 * of one cluster, as bus-conformance.test.ts does for buses.
 *
 * Two writers of one once-mark at the same moment (OutgoingMessage.once): Kafka ingest hands a
 * record over again after a rebalance, and during a store outage two nodes can retry the same
 * record at once. Exactly one of them stores it; the other hears `duplicate`; history and the bus
 * hold it once.
 *
 * The store factories are {@link storeNodes}, one small function to fold into the store
 * conformance suite.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, test } from 'node:test';
import { Admin } from '@platformatic/kafka';
import { Redis } from 'ioredis';
import { MemoryBroker } from '../../src/bus/memory.js';
import { channelOfTopic, channelTopic } from '../../src/channels/service.js';
import { parseNatsUrl } from '../../src/config/bus-address.js';
import { JetStreamChannelStore, JetStreamLog } from '../../src/history/jetstream.js';
import { KafkaChannelStore, KafkaLog } from '../../src/history/kafka.js';
import { MemoryChannelStore } from '../../src/history/memory.js';
import { RedisChannelStore, withScripts } from '../../src/history/redis.js';
import type { ChannelStore, OutgoingMessage, PublishResult } from '../../src/history/store.js';
import { silentLogger } from '../../src/logger.js';
import { encodeEnvelope, EnvelopeKind } from '../../src/node/envelope.js';
import { messageHead } from '../../src/protocol/message-frame.js';
import { NATS_URL, REDIS_URL } from '../helpers/brokers.js';
import { uniquePrefix } from '../helpers/nodes.js';

const KAFKA = process.env.FANOUT_TEST_KAFKA ?? '127.0.0.1:9092';
const HISTORY_SIZE = 100;
const HISTORY_TTL = 300;

export type StoreKind = 'memory' | 'redis' | 'jetstream' | 'kafka';

/** `count` channel stores of one cluster (each as one node sees it), and how to close them. */
export interface StoreNodes {
  readonly stores: readonly ChannelStore[];
  /** The bus topic of a channel under this cluster's prefix. */
  readonly topicOf: (channel: string) => string;
  readonly close: () => Promise<void>;
}

/** Builds `count` connected stores of `kind` on a cluster prefix of their own (the real broker for every kind but memory). */
export async function storeNodes(kind: StoreKind, count: number): Promise<StoreNodes> {
  const prefix = uniquePrefix(`sf-${kind}`);
  const topicOf = (channel: string): string => channelTopic(prefix, channel);
  const channelOf = (topic: string): string | undefined => channelOfTopic(prefix, topic);
  const channelHead = (channel: string, origin: string, at: number): Buffer => encodeEnvelope(EnvelopeKind.CHANNEL, origin, Buffer.from(messageHead(channel)), at);
  const ids = Array.from({ length: count }, (_, i) => `n${i + 1}`);
  const logger = silentLogger();
  if (kind === 'memory') {
    const broker = new MemoryBroker();
    const stores = ids.map(() => new MemoryChannelStore(broker, { historySize: HISTORY_SIZE, historyTtl: HISTORY_TTL, historyMaxBytes: 0, connected: () => true, deliver: () => {} }));
    return { stores, topicOf, close: async () => {} };
  }
  if (kind === 'redis') {
    const clients = ids.map(() => withScripts(new Redis(REDIS_URL)));
    const stores = clients.map((redis) => new RedisChannelStore(redis, { prefix, historySize: HISTORY_SIZE, historyTtl: HISTORY_TTL }));
    return { stores, topicOf, close: async () => void clients.forEach((c) => c.disconnect()) };
  }
  if (kind === 'jetstream') {
    const address = parseNatsUrl(NATS_URL);
    const logs = ids.map((nodeId) => new JetStreamLog({ address, prefix, nodeId, historySize: HISTORY_SIZE, historyTtl: HISTORY_TTL, channelOf, channelHead, logger }));
    await Promise.all(logs.map((log) => log.connect()));
    return { stores: logs.map((log, i) => new JetStreamChannelStore(log, ids[i]!)), topicOf, close: async () => void (await Promise.all(logs.map((log) => log.close()))) };
  }
  const topic = `${prefix}-${randomBytes(3).toString('hex')}`;
  const address = { kind: 'kafka', brokers: [KAFKA], topic, describe: `kafka://${KAFKA}/${topic}` } as const;
  const logs = ids.map((nodeId) => new KafkaLog({ address, nodeId, historySize: HISTORY_SIZE, historyTtl: HISTORY_TTL, channelOf, topicOf, channelHead, logger }));
  await Promise.all(logs.map((log) => log.connect()));
  return {
    stores: logs.map((log, i) => new KafkaChannelStore(log, ids[i]!, HISTORY_SIZE)),
    topicOf,
    close: async () => {
      await Promise.all(logs.map((log) => log.close()));
      const admin = new Admin({ clientId: 'store-faults-test', bootstrapBrokers: [KAFKA] });
      await admin.deleteTopics({ topics: [logs[0]!.topic] }).catch(() => {});
      await admin.close();
    },
  };
}

function message(topicOf: (channel: string) => string, channel: string, data: string, once: OutgoingMessage['once']): OutgoingMessage {
  return { channel, topic: topicOf(channel), head: encodeEnvelope(EnvelopeKind.CHANNEL, 'test', Buffer.from(messageHead(channel))), data, once };
}

const KINDS: readonly StoreKind[] = ['memory', 'redis', 'jetstream', 'kafka'];
const opened: StoreNodes[] = [];
after(() => Promise.all(opened.map((n) => n.close())));

for (const kind of KINDS) {
  describe(`${kind} store`, () => {
    test('two writers of one once-mark at the same moment: exactly one stores it, the other hears duplicate, history holds it once', async () => {
      const nodes = await storeNodes(kind, 2);
      opened.push(nodes);
      const [a, b] = nodes.stores as [ChannelStore, ChannelStore];
      // Several records, each handed to both nodes at once (as after a rebalance during an outage).
      const channel = `ingest.${kind}`;
      const source = 'orders/0';
      const outcomes: Array<[PublishResult, PublishResult]> = [];
      for (let position = 10; position < 18; position++) {
        const data = JSON.stringify({ position });
        outcomes.push(await Promise.all([a.publish(message(nodes.topicOf, channel, data, { source, position })), b.publish(message(nodes.topicOf, channel, data, { source, position }))]));
      }
      for (const [i, pair] of outcomes.entries()) {
        assert.deepEqual(
          pair.map((r) => r.duplicate === true).sort(),
          [false, true],
          `record ${10 + i}: one stored and one duplicate, got ${JSON.stringify(pair)}`,
        );
      }
      // Every node's history has each record once, in order.
      const want = Array.from({ length: 8 }, (_, i) => JSON.stringify({ position: 10 + i }));
      for (const store of [a, b]) {
        const read = await store.read(channel, { limit: HISTORY_SIZE });
        assert.deepEqual(read.messages.map((m) => m.data), want);
      }
      // A later writer of an old position hears duplicate too, and a new position is stored.
      assert.equal((await b.publish(message(nodes.topicOf, channel, '"old"', { source, position: 12 }))).duplicate, true);
      assert.notEqual((await a.publish(message(nodes.topicOf, channel, '"new"', { source, position: 18 }))).duplicate, true);
      assert.deepEqual((await a.read(channel, { limit: HISTORY_SIZE })).messages.map((m) => m.data), [...want, '"new"']);
    });
  });
}
