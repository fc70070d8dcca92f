/**
 * Channel history and recovery on Kafka, with no Redis: a private broker (scripts/kafka-dev.sh on
 * free ports) with a second listener behind a TCP proxy, real nodes, real ws clients. Offsets are
 * partition offsets of the `<bus topic>.channels` topic: increasing per channel, not consecutive.
 * What every store promises (order, paging, retention, recovery rules) is in the store
 * conformance suite; here is what the nodes add on Kafka (catch-up, restarts, a node started late).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { FanoutNode } from '../../src/app.js';
import type { KafkaProcess } from '../../harness/kafka.js';
import { until } from '../../harness/wait.js';
import { connectChannels, frames, messagesOf, publish, request, subscribe, waitMessages, type Frame } from '../helpers/channels.js';
import { scrape, scrapeUntil } from '../helpers/metrics.js';
import { closeNodes, httpUrl, startNode, uniquePrefix, waitNodesReady } from '../helpers/nodes.js';
import { recoveryAcrossSigkill } from '../helpers/kill-recovery.js';
import { startProxiedKafka, type ProxiedKafka } from '../helpers/proxied-kafka.js';
import type { TcpProxy } from '../helpers/tcp-proxy.js';
import { closeAll, type TestClient } from '../helpers/ws-client.js';

let kafka: KafkaProcess;
let proxy: TcpProxy;

let broker: ProxiedKafka | undefined;

before(async () => {
  broker = await startProxiedKafka();
  ({ kafka, proxy } = broker);
});

after(async () => {
  await broker?.destroy();
});

/** A bus topic of its own per test (the history topic is named after it). */
function topic(tag: string): string {
  return uniquePrefix(tag).replace(/[^A-Za-z0-9._-]/g, '-');
}

/** In-process nodes on Kafka, history on that Kafka by default (no --history given). */
async function nodesOn(ids: readonly string[], extra: Record<string, unknown> = {}, kafkaTopic = topic('kh')): Promise<FanoutNode[]> {
  const prefix = uniquePrefix('kh');
  const nodes: FanoutNode[] = [];
  for (const id of ids) nodes.push(await startNode({ bus: kafka.url(kafkaTopic), busPrefix: prefix, nodeId: `kh-${id}`, ...extra }));
  await waitNodesReady(nodes, 30_000);
  return nodes;
}

test('Kafka history: pages on the other node, paging back with before; recovery with since on the other node; a node started later has the history too', { timeout: 90_000 }, async () => {
  const kafkaTopic = topic('khp');
  const nodes = await nodesOn(['a', 'b'], { historySize: 50 }, kafkaTopic);
  const clients: TestClient[] = [];
  try {
    const pub = await connectChannels(nodes[0]!);
    const reader = await connectChannels(nodes[1]!);
    clients.push(pub, reader);
    const acks: number[] = [];
    for (let i = 1; i <= 12; i++) {
      acks.push(await publish(pub, 'log', `e${i}`));
      await publish(pub, 'noise', i);
    }
    // The gauge counts what history keeps (12 + 12), not the offsets (log positions, which jump);
    // it moves when the node reads a record back, which may come a fetch linger after the ack.
    const metrics = await scrapeUntil(httpUrl(nodes[0]!, '').replace(/\/$/, ''), (m) => m.value('fanout_history_messages') === 24);
    assert.equal(metrics.value('fanout_history_messages'), 24);
    assert.equal(metrics.value('fanout_history_channels'), 2);
    // Eight publishes at once: their acks come before the node reads the records back, and the
    // gauge still ends at every message the channel keeps (a count taken at each ack stayed short).
    await Promise.all(Array.from({ length: 8 }, (_, i) => publish(pub, 'eight', i)));
    const after8 = await scrapeUntil(httpUrl(nodes[0]!, '').replace(/\/$/, ''), (m) => m.value('fanout_history_messages') === 32);
    assert.equal(after8.value('fanout_history_channels'), 3);
    // Straight after the acks, on the other node: a read waits until that node has read them.
    const page = await request(reader, { type: 'history', channel: 'log', limit: 3 });
    assert.deepEqual(page.messages, acks.slice(-3).map((offset, i) => ({ offset, data: `e${10 + i}` })));
    assert.ok((page.offset as number) >= acks.at(-1)!);
    // Many reads at once share the broker requests that tell where the log ends; each still sees every ack.
    const readers = await Promise.all(Array.from({ length: 20 }, () => connectChannels(nodes[1]!)));
    clients.push(...readers);
    const last = await publish(pub, 'side', 'burst');
    const pages = await Promise.all(readers.map((r) => request(r, { type: 'history', channel: 'side', limit: 1 })));
    for (const p of pages) assert.deepEqual(p.messages, [{ offset: last, data: 'burst' }]);
    const older = await request(reader, { type: 'history', channel: 'log', limit: 4, before: acks[9] });
    assert.deepEqual((older.messages as Frame[]).map((m) => m.offset), acks.slice(5, 9));

    // A client that saw up to e4 on node A resumes on node B: e5…e12, in order, once each.
    const back = await connectChannels(nodes[1]!);
    clients.push(back);
    const reply = await subscribe(back, 'log', { offset: acks[3]!, epoch: page.epoch as string });
    assert.equal(reply.recovered, true);
    assert.deepEqual(messagesOf(back, 'log').map((m) => m.data), Array.from({ length: 8 }, (_, i) => `e${i + 5}`));
    assert.deepEqual(messagesOf(back, 'log').map((m) => m.offset), acks.slice(4));
    const next = await publish(pub, 'log', 'e13');
    const all = await waitMessages(back, 'log', 9);
    assert.deepEqual(all.map((m) => m.offset), [...acks.slice(4), next], 'a live message after the recovery comes once');

    // A third node, started now, reads the log at start: same history, same epoch, recovery works there.
    const late = await startNode({ bus: kafka.url(kafkaTopic), busPrefix: nodes[0]!.config.busPrefix, nodeId: 'kh-late', historySize: 50 });
    nodes.push(late);
    await waitNodesReady([late], 30_000);
    const lateReader = await connectChannels(late);
    clients.push(lateReader);
    const latePage = await request(lateReader, { type: 'history', channel: 'log' });
    assert.equal(latePage.epoch, page.epoch);
    assert.deepEqual((latePage.messages as Frame[]).map((m) => m.offset), [...acks, next]);
    const lateBack = await connectChannels(late);
    clients.push(lateBack);
    const lateReply = await subscribe(lateBack, 'log', { offset: acks[9]!, epoch: page.epoch as string });
    assert.equal(lateReply.recovered, true);
    assert.deepEqual(messagesOf(lateBack, 'log').map((m) => m.data), ['e11', 'e12', 'e13']);
  } finally {
    closeAll(clients);
    await closeNodes(nodes);
  }
});

test('Kafka history: the broker restarts (its log kept): nodes resume, no acknowledged message is lost, live delivery goes on, same epoch', { timeout: 180_000 }, async () => {
  const nodes = await nodesOn(['a', 'b']);
  const clients: TestClient[] = [];
  let brokerDown = false;
  try {
    const pub = await connectChannels(nodes[0]!);
    const live = await connectChannels(nodes[1]!);
    clients.push(pub, live);
    const { epoch } = await subscribe(live, 'room');
    const beforeAcks: number[] = [];
    for (let i = 1; i <= 5; i++) beforeAcks.push(await publish(pub, 'room', `before ${i}`));
    await waitMessages(live, 'room', 5);

    brokerDown = true;
    await kafka.kill();
    await until(() => nodes.every((n) => !n.ready), { timeoutMs: 30_000, what: 'the nodes to notice' });
    const refused = await request(pub, { type: 'publish', channel: 'room', data: 'during' });
    assert.deepEqual([refused.type, refused.code], ['error', 'unavailable']);
    await kafka.start();
    brokerDown = false;
    await waitNodesReady(nodes, 60_000);
    const afterAcks: number[] = [];
    for (let i = 1; i <= 5; i++) {
      let ack: number | undefined;
      await until(
        async () => {
          ack = await publish(pub, 'room', `after ${i}`).catch(() => undefined);
          return ack !== undefined;
        },
        { timeoutMs: 30_000, intervalMs: 250, what: 'a publish after the restart' },
      );
      afterAcks.push(ack!);
    }
    const got = await waitMessages(live, 'room', 10, 30_000);
    assert.deepEqual(got.map((m) => m.offset), [...beforeAcks, ...afterAcks], 'the live subscriber stayed and got everything once, in order');
    assert.equal(live.closeCode, undefined);
    const reader = await connectChannels(nodes[0]!);
    clients.push(reader);
    const history = await request(reader, { type: 'history', channel: 'room' });
    assert.equal(history.epoch, epoch, 'the topic survived the restart: same epoch');
    assert.deepEqual((history.messages as Frame[]).map((m) => m.data), ['before 1', 'before 2', 'before 3', 'before 4', 'before 5', 'after 1', 'after 2', 'after 3', 'after 4', 'after 5']);
    const resumed = await connectChannels(nodes[0]!);
    clients.push(resumed);
    const reply = await subscribe(resumed, 'room', { offset: beforeAcks[2]!, epoch: epoch as string });
    assert.equal(reply.recovered, true);
    assert.deepEqual(messagesOf(resumed, 'room').map((m) => m.offset), [...beforeAcks.slice(3), ...afterAcks]);
  } finally {
    closeAll(clients);
    if (brokerDown) await kafka.start();
    await closeNodes(nodes);
  }
});

test('Kafka history: a node SIGKILLed mid-stream; clients recovering on the other node get every acknowledged message once, in order', { timeout: 120_000 }, async () => {
  const prefix = uniquePrefix('khk');
  const bus = kafka.url(topic('khk'));
  const args = (id: string) => ['--bus', bus, '--bus-prefix', prefix, '--node-id', id, '--heartbeat', '1'];
  await recoveryAcrossSigkill(args, 30_000);
});

test('Kafka history: a node cut off from Kafka while the other keeps publishing: when the link is back its subscribers get everything, in order, without reconnecting', { timeout: 120_000 }, async () => {
  const kafkaTopic = topic('khc');
  const prefix = uniquePrefix('khc');
  const a = await startNode({ bus: kafka.proxiedUrl(kafkaTopic), busPrefix: prefix, nodeId: 'cut-a' });
  const b = await startNode({ bus: kafka.url(kafkaTopic), busPrefix: prefix, nodeId: 'cut-b' });
  const clients: TestClient[] = [];
  try {
    await waitNodesReady([a, b], 30_000);
    const subs = await Promise.all([a, a, a].map((n) => connectChannels(n)));
    const pub = await connectChannels(b);
    clients.push(...subs, pub);
    for (const s of subs) await subscribe(s, 'ticker');
    const acks: number[] = [];
    for (let i = 0; i < 5; i++) acks.push(await publish(pub, 'ticker', i));
    await Promise.all(subs.map((s) => waitMessages(s, 'ticker', 5)));

    proxy.cut();
    await until(() => !a.ready, { timeoutMs: 30_000, what: 'node a to notice the cut' });
    for (let i = 5; i < 15; i++) acks.push(await publish(pub, 'ticker', i));
    assert.equal(messagesOf(subs[0]!, 'ticker').length, 5, 'node a really was cut off');
    proxy.restore();
    await waitNodesReady([a], 60_000);
    for (let i = 15; i < 20; i++) acks.push(await publish(pub, 'ticker', i));

    for (const s of subs) {
      const got = await waitMessages(s, 'ticker', 20, 30_000);
      assert.deepEqual(got.map((m) => m.offset), acks, 'every message once, in order');
      assert.deepEqual(got.map((m) => m.data), Array.from({ length: 20 }, (_, i) => i));
      assert.equal(s.closeCode, undefined, 'nobody had to reconnect');
    }
  } finally {
    proxy.restore();
    closeAll(clients);
    await closeNodes([a, b]);
  }
});

test('Kafka presence: a presence list on one node shows the clients of both, a leave travels in the channel\'s order to the other node, and the publish counts are a bus\'s', { timeout: 60_000 }, async () => {
  const [a, b] = (await nodesOn(['pa', 'pb'], { presence: 'chat:*' })) as [FanoutNode, FanoutNode];
  const clients: TestClient[] = [];
  try {
    assert.equal(a.config.history.kind, 'kafka');
    const sa = await connectChannels(a);
    const sb = await connectChannels(b);
    clients.push(sa, sb);
    await subscribe(sa, 'chat:h');
    await subscribe(sb, 'chat:h');
    const aId = frames(sa)[0]!.client;
    const bId = frames(sb)[0]!.client;
    // Joins are written when the subscription goes live: the list on either node shows both.
    await until(
      async () => {
        const list = await request(sa, { type: 'presence', channel: 'chat:h' });
        const ids = ((list.clients ?? []) as Frame[]).map((c) => c.client);
        return ids.includes(aId) && ids.includes(bId);
      },
      { timeoutMs: 20_000, intervalMs: 200, what: 'both clients in the presence list' },
    );
    sb.close();
    const leave = await sa.json<Frame>((f) => f.type === 'leave' && f.client === bId);
    assert.equal(leave.channel, 'chat:h');
    const after = await request(sa, { type: 'presence', channel: 'chat:h' });
    assert.deepEqual(((after.clients ?? []) as Frame[]).map((c) => c.client), [aId], 'the leave is in the list too');
    for (let i = 0; i < 10; i++) await publish(sa, 'chat:h', i);
    await waitMessages(sa, 'chat:h', 10);
    const [ma, mb] = [await scrape(httpUrl(a).replace(/\/$/, '')), await scrape(httpUrl(b).replace(/\/$/, ''))];
    assert.equal(ma.value('fanout_messages_out_total', { kind: 'channel' }), 10);
    assert.ok(mb.value('fanout_messages_out_total', { kind: 'presence' }) >= 1, 'the leave event');
    assert.ok(ma.value('fanout_publish_latency_seconds_count') >= 10, 'channel messages reaching sockets are timed');
  } finally {
    closeAll(clients);
    await closeNodes([a, b]);
  }
});
