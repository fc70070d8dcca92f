/**
 * The fetch linger of Kafka consumers (brokers/kafka/fetch-linger.ts) on the shared Kafka
 * (127.0.0.1:9092), a topic of its own: under a steady flow of records the consumer makes about
 * one fetch per linger, not one per record, and still hands on every record once, in order, and
 * after a quiet spell.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, test } from 'node:test';
import { Admin, Consumer, MessagesStreamModes, ProduceAcks, Producer, type MessagesStream } from '@platformatic/kafka';
import { FETCH_LINGER_MS, lingerFetches } from '../../src/brokers/kafka/fetch-linger.js';
import { until } from '../../harness/wait.js';

const BROKERS = process.env.FANOUT_TEST_KAFKA ?? '127.0.0.1:9092';
const topic = `fanout-linger-${randomBytes(4).toString('hex')}`;
const base = { clientId: `linger-${randomBytes(4).toString('hex')}`, bootstrapBrokers: [BROKERS] };

after(async () => {
  const admin = new Admin(base);
  await admin.deleteTopics({ topics: [topic] }).catch(() => {});
  await admin.close();
});

test('a steady flow: one fetch per linger, not per record; every record once, in order; the flow goes on after a quiet spell', { timeout: 60_000 }, async () => {
  const admin = new Admin(base);
  await admin.createTopics({ topics: [topic], partitions: 1, replicas: -1 });
  await admin.close();
  const producer = new Producer({ ...base, acks: ProduceAcks.ALL, idempotent: true });
  const consumer = new Consumer({ ...base, groupId: `${base.clientId}-g`, maxWaitTime: 500, autocommit: false });
  let stream: MessagesStream<Buffer, Buffer, Buffer, Buffer> | undefined;
  try {
    stream = await consumer.consume({ topics: [topic], mode: MessagesStreamModes.MANUAL, offsets: [{ topic, partition: 0, offset: 0n }], autocommit: false });
    const got: string[] = [];
    /** Per fetch answer, how many records it brought. */
    const answers: number[] = [];
    stream.on('fetch', () => answers.push(0));
    stream.on('data', (m: { value: Buffer }) => {
      got.push(m.value.toString());
      answers[answers.length - 1]! += 1;
    });
    const linger = lingerFetches(stream);

    // 200 records, one produce request each, one after the other: without the linger, a fetch
    // goes out as soon as the last one is answered, about one per record.
    const sent = Array.from({ length: 200 }, (_, i) => `r${i}`);
    const started = performance.now();
    for (const value of sent) await producer.send({ messages: [{ topic, value: Buffer.from(value) }] });
    await until(() => got.length >= sent.length, { timeoutMs: 30_000, what: `${sent.length} records`, detail: () => `got ${got.length}` });
    const elapsed = performance.now() - started;
    assert.deepEqual(got, sent);
    const withRecords = answers.filter((n) => n > 0).length;
    // At most one fetch per linger while records flow (+2: the first, and the one under way at the end).
    assert.ok(withRecords <= Math.ceil(elapsed / FETCH_LINGER_MS) + 2, `${withRecords} fetches brought records in ${elapsed.toFixed(0)} ms`);

    // Quiet (the consumer back at the broker, waiting), then one record: one fetch brings it.
    await new Promise((r) => setTimeout(r, 1500));
    const quietAnswers = answers.length;
    await producer.send({ messages: [{ topic, value: Buffer.from('late') }] });
    await until(() => got.at(-1) === 'late', { timeoutMs: 10_000, what: 'the record after the quiet spell' });
    assert.deepEqual(answers.slice(quietAnswers).filter((n) => n > 0), [1]);
    linger.stop();
  } finally {
    await stream?.close().catch(() => {});
    await Promise.all([consumer.close(true), producer.close(true)]);
  }
});
