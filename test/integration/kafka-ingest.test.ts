/**
 * --kafka-ingest on the shared Kafka (127.0.0.1:9092), a topic of its own per test: records keyed
 * by channel reach /ws/v1 subscribers and history with the offsets POST /api/publish gives; two
 * nodes in one group publish each record once; a node killed mid-stream (SIGKILL, nothing
 * committed after its last publishes) is replaced by one that goes on with nothing lost and
 * nothing twice; a record that is not JSON (or not UTF-8) is skipped and later ones still arrive,
 * with one warn line per burst saying where and why; an unreachable Kafka is named with its cause.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, test } from 'node:test';
import { Admin, ProduceAcks, Producer } from '@platformatic/kafka';
import type { FanoutNode } from '../../src/app.js';
import { forkFanoutServe, type ServerProcess } from '../../harness/fanout-process.js';
import { freePort } from '../../harness/ports.js';
import { until } from '../../harness/wait.js';
import { REDIS_URL } from '../helpers/brokers.js';
import { connectChannels, subscribe, waitMessages } from '../helpers/channels.js';
import { scrapeUntil } from '../helpers/metrics.js';
import { closeNodes, httpUrl, startNode, uniquePrefix } from '../helpers/nodes.js';
import { closeAll, type TestClient } from '../helpers/ws-client.js';

const BROKERS = process.env.FANOUT_TEST_KAFKA ?? '127.0.0.1:9092';
const API_KEY = 'ingest-key';

const nodes: FanoutNode[] = [];
const clients: TestClient[] = [];
const processes: ServerProcess[] = [];
const topics: string[] = [];

after(async () => {
  closeAll(clients);
  await closeNodes(nodes);
  await Promise.all(processes.map((p) => p.stop('SIGKILL')));
  const admin = new Admin({ clientId: 'ingest-test', bootstrapBrokers: [BROKERS] });
  await admin.deleteTopics({ topics }).catch(() => {});
  await admin.close();
});

/** A new topic with `partitions` partitions. */
async function createTopic(partitions: number): Promise<string> {
  const topic = `ingest-${randomBytes(4).toString('hex')}`;
  const admin = new Admin({ clientId: 'ingest-test', bootstrapBrokers: [BROKERS] });
  try {
    await admin.createTopics({ topics: [topic], partitions, replicas: 1 });
  } finally {
    await admin.close();
  }
  topics.push(topic);
  return topic;
}

/** Writes records as a back end would: idempotent, so the log holds each once, in order per key. */
async function produce(topic: string, records: ReadonlyArray<{ key: string; value: string | Buffer }>): Promise<void> {
  const producer = new Producer({ clientId: 'ingest-test', bootstrapBrokers: [BROKERS], acks: ProduceAcks.ALL, idempotent: true });
  try {
    await producer.metadata({ topics: [topic] });
    for (let i = 0; i < records.length; i += 200) {
      await producer.send({ messages: records.slice(i, i + 200).map((r) => ({ topic, key: Buffer.from(r.key), value: Buffer.from(r.value) })) });
    }
  } finally {
    await producer.close();
  }
}

interface History {
  offset: number;
  messages: Array<{ offset: number; data: unknown }>;
}

/** The channel's whole history, paged back with `before` while the node says there is more. */
async function history(base: string, channel: string): Promise<History> {
  let offset = 0;
  let messages: History['messages'] = [];
  for (let before: number | undefined; ; ) {
    const query = before === undefined ? '' : `&before=${before}`;
    const res = await fetch(`${base}/api/channels/${encodeURIComponent(channel)}/history?limit=1000${query}`, { headers: { authorization: `Bearer ${API_KEY}` } });
    assert.equal(res.status, 200);
    const page = (await res.json()) as History & { more?: boolean };
    if (before === undefined) offset = page.offset;
    messages = [...page.messages, ...messages];
    if (!page.more || page.messages.length === 0) return { offset, messages };
    before = page.messages[0]!.offset;
  }
}

test('records reach /ws/v1 subscribers and history with the offsets POST /api/publish gives', async () => {
  const topic = await createTopic(1);
  const node = await startNode({ apiKey: API_KEY, kafkaIngest: topic, kafkaBrokers: BROKERS, busPrefix: uniquePrefix('ingest') });
  nodes.push(node);
  const client = await connectChannels(node);
  clients.push(client);
  await subscribe(client, 'orders:1');
  await produce(topic, [1, 2, 3].map((n) => ({ key: 'orders:1', value: JSON.stringify({ n }) })));
  const got = await waitMessages(client, 'orders:1', 3, 30_000);
  assert.deepEqual(got.map((f) => [f.offset, f.data]), [[1, { n: 1 }], [2, { n: 2 }], [3, { n: 3 }]]);

  // The API's publish continues the same offsets: one path into the channel.
  const res = await fetch(httpUrl(node, '/api/publish'), { method: 'POST', headers: { authorization: `Bearer ${API_KEY}` }, body: JSON.stringify({ channel: 'orders:1', data: { n: 4 } }) });
  assert.deepEqual(await res.json(), { offset: 4 });
  const stored = await history(httpUrl(node, '').replace(/\/$/, ''), 'orders:1');
  assert.deepEqual(stored.messages.map((m) => [m.offset, m.data]), [[1, { n: 1 }], [2, { n: 2 }], [3, { n: 3 }], [4, { n: 4 }]]);
  await scrapeUntil(httpUrl(node, '').replace(/\/$/, ''), (s) => s.value('fanout_ingest_records_total', { result: 'published' }) === 3);
});

test('a record that is not JSON, not UTF-8, has no key or a bad channel name is skipped; later records still arrive', async () => {
  const topic = await createTopic(1);
  const node = await startNode({ apiKey: API_KEY, kafkaIngest: topic, kafkaBrokers: BROKERS, busPrefix: uniquePrefix('ingest'), maxPayload: 1024 });
  nodes.push(node);
  const client = await connectChannels(node);
  clients.push(client);
  await subscribe(client, 'feed');
  await produce(topic, [
    { key: 'feed', value: '{"n":1}' },
    { key: 'feed', value: 'not json' },
    { key: 'bad channel name', value: '{"n":0}' },
    { key: '', value: '{"n":0}' },
    { key: 'feed', value: JSON.stringify({ big: 'x'.repeat(2000) }) },
    // JSON in shape, but 0xff is no UTF-8: decoding it would publish {"s":"\ufffd"}, which the producer never wrote.
    { key: 'feed', value: Buffer.concat([Buffer.from('{"s":"'), Buffer.from([0xff]), Buffer.from('"}')]) },
    // A truncated multi-byte sequence (the first two bytes of a three-byte character).
    { key: 'feed', value: Buffer.concat([Buffer.from('{"s":"'), Buffer.from('€').subarray(0, 2), Buffer.from('"}')]) },
    { key: 'feed', value: '{"n":2}' },
  ]);
  const got = await waitMessages(client, 'feed', 2, 30_000);
  assert.deepEqual(got.map((f) => [f.offset, f.data]), [[1, { n: 1 }], [2, { n: 2 }]]);
  await scrapeUntil(httpUrl(node, '').replace(/\/$/, ''), (s) => s.value('fanout_ingest_records_total', { result: 'rejected' }) === 6 && s.value('fanout_ingest_records_total', { result: 'published' }) === 2);
});

/** The JSON log lines of a `fanout serve` process whose `msg` starts with `msg`. */
function logLines(node: ServerProcess, msg: string): Array<Record<string, unknown>> {
  return node
    .output()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((l) => String(l.msg).startsWith(msg));
}

test('a skipped record is one warn line naming topic, partition, offset and why, rate-limited', async () => {
  const topic = await createTopic(1);
  const node = await forkFanoutServe(['--api-key', API_KEY, '--bus-prefix', uniquePrefix('ingest'), '--kafka-ingest', topic, '--kafka-brokers', BROKERS]);
  processes.push(node);
  await produce(topic, [
    { key: 'feed', value: 'not json' },
    { key: 'feed', value: 'not json either' },
    { key: '', value: '{"n":0}' },
    { key: 'feed', value: '{"n":1}' },
  ]);
  const base = `http://127.0.0.1:${node.port}`;
  await until(async () => (await history(base, 'feed')).offset === 1, { timeoutMs: 30_000, what: 'the good record published' });
  // The node's log reaches its stdout a little after the records were handled: wait for the line.
  await until(() => logLines(node, 'kafka ingest: record skipped').length > 0, { timeoutMs: 10_000, what: 'the skipped-record warn line', detail: node.output });
  await scrapeUntil(base, (s) => s.value('fanout_ingest_records_total', { result: 'rejected' }) === 3);
  const skipped = logLines(node, 'kafka ingest: record skipped');
  // Three skipped in a burst: the first is logged at warn, the others only counted (the metric has each).
  assert.equal(skipped.length, 1, node.output());
  assert.deepEqual(
    { level: skipped[0]!.level, topic: skipped[0]!.topic, partition: skipped[0]!.partition, offset: skipped[0]!.offset },
    { level: 40, topic, partition: 0, offset: '0' },
  );
  assert.match(String(skipped[0]!.reason), /JSON/);
});

test('Kafka connection errors name the address and the cause, as Redis\'s do', async () => {
  const port = await freePort();
  const node = await forkFanoutServe(['--bus', `kafka://127.0.0.1:${port}`, '--kafka-ingest', 'orders']);
  processes.push(node);
  const cause = `ECONNREFUSED 127.0.0.1:${port}`;
  await until(() => logLines(node, 'bus not reachable yet').length > 0 && logLines(node, 'kafka ingest: cannot read the topic').length > 0, {
    timeoutMs: 30_000, intervalMs: 100, what: 'the bus and the ingest reporting Kafka unreachable', detail: node.output,
  });
  for (const line of [...logLines(node, 'bus not reachable yet'), ...logLines(node, 'kafka ingest: cannot read the topic')]) {
    assert.ok(String(line.err).includes(cause), `${line.msg}: ${String(line.err)}`);
  }
});

test('two nodes in one group: every record is published once, in order per channel', async () => {
  const topic = await createTopic(4);
  const common = { apiKey: API_KEY, bus: REDIS_URL, busPrefix: uniquePrefix('ingest'), kafkaIngest: topic, kafkaBrokers: BROKERS, historySize: 1000 };
  const pair = [await startNode({ ...common, nodeId: 'i1' }), await startNode({ ...common, nodeId: 'i2' })];
  nodes.push(...pair);
  const channels = ['a', 'b', 'c', 'd', 'e', 'f'];
  const records = [];
  for (let n = 0; n < 40; n++) for (const channel of channels) records.push({ key: channel, value: JSON.stringify({ n }) });
  await produce(topic, records);
  const base = httpUrl(pair[0]!, '').replace(/\/$/, '');
  for (const channel of channels) {
    await until(async () => (await history(base, channel)).offset >= 40, { timeoutMs: 60_000, what: `40 records in ${channel}` });
  }
  // Both nodes may have published by now (the group splits the partitions); none twice.
  for (const channel of channels) {
    const stored = await history(base, channel);
    assert.equal(stored.offset, 40, channel);
    assert.deepEqual(stored.messages.map((m) => m.data), Array.from({ length: 40 }, (_, n) => ({ n })), channel);
  }
});

/** Two `fanout serve` processes in turn ingesting `total` records of one partition into one channel; `args` give the bus and history. */
async function killedMidStream(bus: readonly string[], total: number, count: (h: History) => number): Promise<void> {
  const topic = await createTopic(1);
  const args = ['--api-key', API_KEY, ...bus, '--bus-prefix', uniquePrefix('ingest'), '--kafka-ingest', topic, '--history-size', String(total + 500)];
  await produce(topic, Array.from({ length: total }, (_, n) => ({ key: 'log', value: JSON.stringify({ n }) })));
  const first = await forkFanoutServe(args);
  processes.push(first);
  const base1 = `http://127.0.0.1:${first.port}`;
  await until(async () => count(await history(base1, 'log')) >= 100, { timeoutMs: 30_000, what: 'the first node to ingest 100 records' });
  await first.stop('SIGKILL');
  const second = await forkFanoutServe(args);
  processes.push(second);
  const base2 = `http://127.0.0.1:${second.port}`;
  await until(async () => count(await history(base2, 'log')) >= total, { timeoutMs: 60_000, what: `all ${total} records in the channel` });
  // Whatever the first node published but had not committed was handed over again and refused
  // by the store (without that check, this run had 1506 messages).
  const stored = await history(base2, 'log');
  assert.equal(count(stored), total);
  assert.deepEqual(stored.messages.map((m) => m.data), Array.from({ length: total }, (_, n) => ({ n })));
}

test('a node killed mid-stream is replaced: the next node goes on with nothing lost and nothing twice', async () => {
  // Redis history: offsets count 1, 2, 3…, so the last one is the number of messages.
  await killedMidStream(['--bus', REDIS_URL, '--kafka-brokers', BROKERS], 1500, (h) => h.offset);
});

test('the same on a Kafka bus with history on the Kafka log (no Redis): nothing lost, nothing twice', async () => {
  // Offsets are log positions there: count the messages.
  await killedMidStream(['--bus', `kafka://${BROKERS}/${uniquePrefix('ingestbus').replace(/[^A-Za-z0-9._-]/g, '-')}`], 1500, (h) => h.messages.length);
});
