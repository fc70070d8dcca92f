// Channel history and recovery on NATS JetStream: real nats-server with JetStream, real nodes,
// real ws clients. Offsets are stream sequences: increasing, not consecutive. What every store
// promises (order, paging, retention, recovery rules) is in test/helpers/store-conformance.ts; here is
// what the nodes add on JetStream (delivery beyond retention, catch-up, a re-created stream).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { connect as natsConnect } from 'nats';
import type { FanoutNode } from '../../src/app.js';
import { streamLayout } from '../../src/brokers/nats/jetstream-layout.js';
import { startNatsServer, type BrokerProcess } from '../../harness/brokers.js';
import { until } from '../../harness/wait.js';
import { NATS_URL } from '../helpers/brokers.js';
import { connectChannels, frames, messagesOf, publish, request, subscribe, waitMessages, type Frame } from '../helpers/channels.js';
import { scrape } from '../helpers/metrics.js';
import { closeNodes, httpUrl, startNode, uniquePrefix, waitNodesReady } from '../helpers/nodes.js';
import { recoveryAcrossSigkill } from '../helpers/kill-recovery.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';
import { closeAll, type TestClient } from '../helpers/ws-client.js';

/** Streams the tests created, deleted at the end (on the shared NATS). */
const streams: Array<{ url: string; prefix: string }> = [];

after(async () => {
  for (const { url, prefix } of streams) {
    const nc = await natsConnect({ servers: url, timeout: 2000 }).catch(() => undefined);
    if (!nc) continue;
    const jsm = await nc.jetstreamManager();
    await jsm.streams.delete(streamLayout(prefix).stream).catch(() => {});
    await nc.close();
  }
});

/** Two in-process nodes on one NATS, history in its JetStream. */
async function twoNodes(extra: Record<string, unknown> = {}, url = NATS_URL): Promise<{ nodes: FanoutNode[]; prefix: string }> {
  const prefix = uniquePrefix('js');
  streams.push({ url, prefix });
  const nodes: FanoutNode[] = [];
  for (const id of ['a', 'b']) nodes.push(await startNode({ bus: url, history: url, busPrefix: prefix, nodeId: `js-${id}`, ...extra }));
  await waitNodesReady(nodes);
  return { nodes, prefix };
}

function increasing(offsets: readonly number[]): boolean {
  return offsets.every((o, i) => i === 0 || o > offsets[i - 1]!);
}

test('JetStream history: a burst far larger than --history-size reaches every subscriber on both nodes, every message once, in order', async () => {
  const { nodes } = await twoNodes({ historySize: 5, rateLimit: 0 });
  const clients: TestClient[] = [];
  try {
    const subs = await Promise.all([nodes[0]!, nodes[1]!].map((n) => connectChannels(n)));
    const pub = await connectChannels(nodes[0]!);
    clients.push(...subs, pub);
    for (const s of subs) await subscribe(s, 'burst');
    // Sent without waiting for acks: delivery must not depend on what the stream still retains.
    for (let i = 0; i < 500; i++) pub.sendJson({ type: 'publish', channel: 'burst', data: i, id: i + 1 });
    await pub.until((all) => all.filter((m) => m.includes('"type":"ack"')).length >= 500, 20_000, '500 acks');
    for (const s of subs) {
      const got = await waitMessages(s, 'burst', 500, 20_000);
      assert.deepEqual(got.map((m) => m.data), Array.from({ length: 500 }, (_, i) => i));
      assert.ok(increasing(got.map((m) => m.offset as number)));
    }
  } finally {
    closeAll(clients);
    await closeNodes(nodes);
  }
});

test('JetStream history: subscribes with since race a flood that pushes the channel out of the stream between fence and read: recovered:true only with every message after since, then exactly the acknowledged messages, once, in order', async () => {
  const { nodes } = await twoNodes({ historySize: 5, rateLimit: 0 });
  const clients: TestClient[] = [];
  try {
    const pub = await connectChannels(nodes[0]!);
    const subs = await Promise.all([0, 1, 0, 1].map((n) => connectChannels(nodes[n]!)));
    clients.push(pub, ...subs);
    // A fence on another channel, older than the channel's messages: the stream's first sequence vouches for nothing.
    const { epoch } = await subscribe(pub, 'older');
    const name = 'flooded';
    const since = await publish(pub, name, 'first');
    const before: number[] = [];
    for (let i = 0; i < 4; i++) before.push(await publish(pub, name, `before ${i}`));
    const BASE = 100_000;
    const acked = (): Frame[] => frames(pub).filter((f) => f.type === 'ack' && (f.id as number) >= BASE);
    const replies: Array<Promise<Frame>> = [];
    for (const [k, c] of subs.entries()) {
      for (let i = k * 50; i < k * 50 + 50; i++) pub.sendJson({ type: 'publish', channel: name, data: i, id: BASE + i });
      replies.push(request(c, { type: 'subscribe', channel: name, since: { offset: since, epoch } }, 15_000));
      await pub.until(() => acked().length > k * 50 + 25, 15_000, `chunk ${k} half acknowledged`);
    }
    await pub.until(() => acked().length === subs.length * 50, 15_000, 'every publish acknowledged');
    const answers = await Promise.all(replies);
    const offsets = [...before, ...acked().map((f) => f.offset as number)].sort((x, y) => x - y);
    for (const [k, c] of subs.entries()) {
      const reply = answers[k]!;
      assert.equal(reply.type, 'subscribed', JSON.stringify(reply));
      // Recovered: every message after since, recovered then live; else (since is gone) the live ones after the reply's offset.
      const expected = offsets.filter((o) => o > (reply.recovered === true ? since : (reply.offset as number)));
      await until(() => messagesOf(c, name).length >= expected.length, { timeoutMs: 20_000, what: `subscriber ${k}: ${expected.length} messages` });
      assert.deepEqual(messagesOf(c, name).map((m) => m.offset), expected, `subscriber ${k} (recovered: ${String(reply.recovered)}): nothing lost or repeated`);
    }
  } finally {
    closeAll(clients);
    await closeNodes(nodes);
  }
});

test('JetStream history: the NATS server restarts (its store kept): nodes resume, no acknowledged message is lost, live delivery goes on', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'fanout-js-'));
  let server: BrokerProcess | undefined = await startNatsServer(['-js', '-sd', dir]);
  const { nodes } = await twoNodes({}, server.url);
  const clients: TestClient[] = [];
  try {
    const pub = await connectChannels(nodes[0]!);
    const live = await connectChannels(nodes[1]!);
    clients.push(pub, live);
    const { epoch } = await subscribe(live, 'room');
    const before: number[] = [];
    for (let i = 1; i <= 5; i++) before.push(await publish(pub, 'room', `before ${i}`));
    await waitMessages(live, 'room', 5);

    await server.stop('SIGKILL');
    // While JetStream is away: the nodes are not ready and a publish is refused, not lost.
    await until(() => nodes.every((n) => !n.ready), { timeoutMs: 20_000, what: 'the nodes to notice' });
    const refused = await request(pub, { type: 'publish', channel: 'room', data: 'during' });
    assert.deepEqual([refused.type, refused.code], ['error', 'unavailable']);
    await server.start();
    await waitNodesReady(nodes, 20_000);
    // Publishes may be refused (`unavailable`) until JetStream has loaded the stream: retry them.
    const afterAcks: number[] = [];
    for (let i = 1; i <= 5; i++) {
      let ack: number | undefined;
      await until(
        async () => {
          ack = await publish(pub, 'room', `after ${i}`).catch(() => undefined);
          return ack !== undefined;
        },
        { timeoutMs: 20_000, intervalMs: 200, what: 'a publish after the restart' },
      );
      afterAcks.push(ack!);
    }
    // The live subscriber on B stayed subscribed and gets what came after, once each.
    const got = await waitMessages(live, 'room', 10, 20_000);
    assert.deepEqual(got.map((m) => m.offset), [...before, ...afterAcks]);
    assert.equal(live.closeCode, undefined);
    const reader = await connectChannels(nodes[1]!);
    clients.push(reader);
    const history = await request(reader, { type: 'history', channel: 'room' });
    assert.equal(history.epoch, epoch, 'the stream survived the restart: same epoch');
    assert.deepEqual((history.messages as Frame[]).map((m) => m.offset), [...before, ...afterAcks]);
    const resumed = await connectChannels(nodes[0]!);
    clients.push(resumed);
    const reply = await subscribe(resumed, 'room', { offset: before[2]!, epoch: epoch as string });
    assert.equal(reply.recovered, true);
    assert.deepEqual(messagesOf(resumed, 'room').map((m) => m.offset), [...before.slice(3), ...afterAcks]);
  } finally {
    closeAll(clients);
    await closeNodes(nodes);
    await server?.stop();
    server = undefined;
    rmSync(dir, { recursive: true, force: true });
  }
});

test('JetStream history: a node SIGKILLed mid-stream; clients recovering on the other node get every acknowledged message once, in order', async () => {
  const prefix = uniquePrefix('jsk');
  streams.push({ url: NATS_URL, prefix });
  const args = (id: string) => ['--bus', NATS_URL, '--history', NATS_URL, '--bus-prefix', prefix, '--node-id', id, '--heartbeat', '1'];
  await recoveryAcrossSigkill(args);
});

test('JetStream history: a node cut off from NATS while the other keeps publishing: when the link is back its subscribers get everything, in order, without reconnecting', async () => {
  const natsPort = Number(new URL(NATS_URL).port || 4222);
  const link = await TcpProxy.start(natsPort, new URL(NATS_URL).hostname);
  const prefix = uniquePrefix('jsc');
  streams.push({ url: NATS_URL, prefix });
  const a = await startNode({ bus: NATS_URL, history: `nats://127.0.0.1:${link.port}`, busPrefix: prefix, nodeId: 'cut-a' });
  const b = await startNode({ bus: NATS_URL, history: NATS_URL, busPrefix: prefix, nodeId: 'cut-b' });
  const clients: TestClient[] = [];
  try {
    await waitNodesReady([a, b]);
    const subs = await Promise.all([a, a, a].map((n) => connectChannels(n)));
    const pub = await connectChannels(b);
    clients.push(...subs, pub);
    for (const s of subs) await subscribe(s, 'ticker');
    const acks: number[] = [];
    for (let i = 0; i < 5; i++) acks.push(await publish(pub, 'ticker', i));
    await Promise.all(subs.map((s) => waitMessages(s, 'ticker', 5)));

    link.cut();
    await until(() => !a.ready, { timeoutMs: 20_000, what: 'node a to notice the cut' });
    for (let i = 5; i < 15; i++) acks.push(await publish(pub, 'ticker', i));
    assert.equal(messagesOf(subs[0]!, 'ticker').length, 5, 'node a really was cut off');
    link.restore();
    await waitNodesReady([a], 20_000);
    for (let i = 15; i < 20; i++) acks.push(await publish(pub, 'ticker', i));

    for (const s of subs) {
      const got = await waitMessages(s, 'ticker', 20, 20_000);
      assert.deepEqual(got.map((m) => m.offset), acks, 'every message once, in order');
      assert.deepEqual(got.map((m) => m.data), Array.from({ length: 20 }, (_, i) => i));
      assert.equal(s.closeCode, undefined, 'nobody had to reconnect');
    }
  } finally {
    closeAll(clients);
    await closeNodes([a, b]);
    await link.close();
  }
});

test('JetStream history: messages that reach a node while its link comes back, before it reports connected, are delivered in order after the ones it missed, none skipped', async () => {
  // The NATS client resubscribes as soon as it reconnects; the node reports `connected` only after
  // ensuring the stream (round trips, made slow here by the link's latency). A publisher that never
  // stops puts messages in that window: they must wait behind the catch-up of the missed ones.
  const natsPort = Number(new URL(NATS_URL).port || 4222);
  const link = await TcpProxy.start(natsPort, new URL(NATS_URL).hostname);
  const prefix = uniquePrefix('jsw');
  streams.push({ url: NATS_URL, prefix });
  const a = await startNode({ bus: NATS_URL, history: `nats://127.0.0.1:${link.port}`, busPrefix: prefix, nodeId: 'win-a', historySize: 1000 });
  const b = await startNode({ bus: NATS_URL, history: NATS_URL, busPrefix: prefix, nodeId: 'win-b', historySize: 1000 });
  const clients: TestClient[] = [];
  let publishing = true;
  try {
    await waitNodesReady([a, b]);
    const subs = await Promise.all([a, a].map((n) => connectChannels(n)));
    const pub = await connectChannels(b);
    clients.push(...subs, pub);
    for (const s of subs) await subscribe(s, 'ticker');
    const acks: number[] = [];
    const publisher = (async () => {
      for (let i = 0; publishing; i++) {
        acks.push(await publish(pub, 'ticker', i));
        await new Promise((r) => setTimeout(r, 10));
      }
    })();
    await until(() => acks.length >= 3, { timeoutMs: 15_000, what: 'the first publishes' });
    link.cut();
    await until(() => !a.ready, { timeoutMs: 20_000, what: 'node a to notice the cut' });
    link.latency(150);
    link.restore();
    await waitNodesReady([a], 30_000);
    const atReady = acks.length;
    await until(() => acks.length >= atReady + 5, { timeoutMs: 15_000, what: 'publishes after node a is back' });
    publishing = false;
    await publisher;
    for (const s of subs) {
      const got = await waitMessages(s, 'ticker', acks.length, 30_000).catch((err: Error) => {
        throw new Error(`${err.message}; offsets got ${JSON.stringify(messagesOf(s, 'ticker').map((m) => m.offset))}, acknowledged ${JSON.stringify(acks)}`);
      });
      assert.deepEqual(got.map((m) => m.offset), acks, 'every message once, in order');
      assert.equal(s.closeCode, undefined, 'nobody had to reconnect');
    }
  } finally {
    publishing = false;
    closeAll(clients);
    await closeNodes([a, b]);
    await link.close();
  }
});

test('JetStream history: the stream deleted under running nodes: a new epoch, subscribers are told to resubscribe, recovery says recovered:false, messages flow again', async () => {
  const { nodes, prefix } = await twoNodes();
  const clients: TestClient[] = [];
  const nc = await natsConnect({ servers: NATS_URL });
  try {
    const pub = await connectChannels(nodes[0]!);
    const live = await connectChannels(nodes[1]!);
    clients.push(pub, live);
    const { epoch } = await subscribe(live, 'reset');
    const old = await publish(pub, 'reset', 'old');
    await waitMessages(live, 'reset', 1);

    await (await nc.jetstreamManager()).streams.delete(streamLayout(prefix).stream);
    // The nodes notice (the consumer's stream is gone, or the next read sees another stream) and recreate it.
    let ack: number | undefined;
    await until(
      async () => {
        ack = await publish(pub, 'reset', 'new').catch(() => undefined);
        return ack !== undefined;
      },
      { timeoutMs: 20_000, intervalMs: 200, what: 'a publish on the new stream' },
    );
    await live.waitClose(20_000);
    assert.equal(live.closeCode, 4510, 'told to resubscribe: what it missed cannot be known');
    const back = await connectChannels(nodes[1]!);
    clients.push(back);
    const reply = await subscribe(back, 'reset', { offset: old, epoch: epoch as string });
    assert.equal(reply.recovered, false);
    assert.notEqual(reply.epoch, epoch, 'a new stream, a new epoch');
    const next = await publish(pub, 'reset', 'after');
    const got = await waitMessages(back, 'reset', 1);
    assert.deepEqual(got.map((m) => [m.offset, m.epoch, m.data]), [[next, reply.epoch, 'after']]);
  } finally {
    closeAll(clients);
    await closeNodes(nodes);
    await nc.close();
  }
});

test('JetStream history: presence events travel through the stream to the other node; its traffic is counted and timed like a bus', async () => {
  const { nodes } = await twoNodes({ presence: 'chat:*' });
  const [a, b] = nodes as [FanoutNode, FanoutNode];
  const clients: TestClient[] = [];
  try {
    const sa = await connectChannels(a);
    const sb = await connectChannels(b);
    clients.push(sa, sb);
    await subscribe(sa, 'chat:h');
    await subscribe(sb, 'chat:h');
    const bId = frames(sb)[0]!.client;
    sb.close();
    const leave = await sa.json<Frame>((f) => f.type === 'leave' && f.client === bId);
    assert.equal(leave.channel, 'chat:h');
    for (let i = 0; i < 10; i++) await publish(sa, 'chat:h', i);
    await waitMessages(sa, 'chat:h', 10);
    const [ma, mb] = [await scrape(httpUrl(a).replace(/\/$/, '')), await scrape(httpUrl(b).replace(/\/$/, ''))];
    assert.equal(ma.value('fanout_messages_out_total', { kind: 'channel' }), 10);
    assert.ok(ma.value('fanout_messages_out_total', { kind: 'control' }) >= 1, 'the fence of the subscription');
    assert.ok(mb.value('fanout_messages_out_total', { kind: 'presence' }) >= 1, 'the leave event');
    assert.ok(ma.value('fanout_publish_latency_seconds_count') >= 10, 'channel messages reaching sockets are timed');
  } finally {
    closeAll(clients);
    await closeNodes(nodes);
  }
});

test('JetStream history: --history-max-bytes is the stream\'s max_bytes, so names used with --history-ttl 0 cannot grow it without end; the default is 256 MiB', async () => {
  const capped = await twoNodes({ historyTtl: 0, historyMaxBytes: 1 << 20 });
  const plain = await twoNodes();
  const nc = await natsConnect({ servers: NATS_URL, timeout: 2000 });
  try {
    const jsm = await nc.jetstreamManager();
    assert.equal((await jsm.streams.info(streamLayout(capped.prefix).stream)).config.max_bytes, 1 << 20);
    assert.equal((await jsm.streams.info(streamLayout(plain.prefix).stream)).config.max_bytes, 256 * 1024 * 1024);
  } finally {
    await nc.close();
    await closeNodes([...capped.nodes, ...plain.nodes]);
  }
});
