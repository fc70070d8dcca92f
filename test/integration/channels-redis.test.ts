import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Redis } from 'ioredis';
import type { ChannelEndpoint } from '../../src/channels/endpoint.js';
import type { FanoutNode } from '../../src/app.js';
import { CHANNEL_PATH } from '../../src/protocol/frames.js';
import { forkFanoutServe, waitReadyPort } from '../../harness/fanout-process.js';
import { freePort } from '../../harness/ports.js';
import { until } from '../../harness/wait.js';
import { REDIS_URL } from '../helpers/brokers.js';
import { connectChannels, frames, messagesOf, publish, request, subscribe, waitMessages } from '../helpers/channels.js';
import { scrape } from '../helpers/metrics.js';
import { closeNodes, httpUrl, startNode, uniquePrefix, waitNodesReady } from '../helpers/nodes.js';
import { closeAll, type TestClient } from '../helpers/ws-client.js';

const API_KEY = 'test-api-key';
let admin: Redis;
let nodes: FanoutNode[];
let busPrefix: string;

before(async () => {
  admin = new Redis(REDIS_URL);
  busPrefix = uniquePrefix('ch');
  nodes = [];
  for (let i = 1; i <= 3; i++) {
    nodes.push(await startNode({ bus: REDIS_URL, busPrefix, nodeId: `r${i}`, apiKey: API_KEY, historySize: 20, presence: 'chat:*' }));
  }
  await waitNodesReady(nodes);
});
after(async () => {
  await closeNodes(nodes);
  const keys = await admin.keys(`${busPrefix}:*`);
  if (keys.length) await admin.del(...keys);
  await admin.quit();
});


function apiPublish(node: FanoutNode, channel: string, data: unknown): Promise<Response> {
  return fetch(httpUrl(node, '/api/publish'), {
    method: 'POST',
    headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify({ channel, data }),
  });
}

test('three nodes over Redis: a subscriber gets what is published on other nodes and through the HTTP API, in offset order', async () => {
  const subs = await Promise.all(nodes.map((n) => connectChannels(n)));
  const pubs = await Promise.all(nodes.map((n) => connectChannels(n)));
  try {
    for (const s of subs) await subscribe(s, 'feed');
    const acks = await Promise.all(Array.from({ length: 30 }, (_, i) => publish(pubs[i % 3]!, 'feed', i)));
    const res = await apiPublish(nodes[1]!, 'feed', { from: 'api' });
    assert.equal(res.status, 200);
    const { offset } = (await res.json()) as { offset: number };
    assert.equal(offset, 31);
    assert.deepEqual([...acks].sort((a, b) => a - b), Array.from({ length: 30 }, (_, i) => i + 1));
    for (const s of subs) {
      const got = await waitMessages(s, 'feed', 31);
      assert.deepEqual(got.map((m) => m.offset), Array.from({ length: 31 }, (_, i) => i + 1), 'same order on every node, no gaps, no duplicates');
      assert.deepEqual(got.at(-1)!.data, { from: 'api' });
      for (const m of got.slice(0, 30)) assert.equal(acks.indexOf(m.offset as number), m.data);
    }
  } finally {
    closeAll([...subs, ...pubs]);
  }
});

test('history over Redis: oldest first, capped by --history-size, the same from every node and the HTTP API', async () => {
  const p = await connectChannels(nodes[0]!);
  try {
    for (let i = 1; i <= 25; i++) await publish(p, 'log', `e${i}`);
    const readers = await Promise.all(nodes.map((n) => connectChannels(n)));
    const replies = await Promise.all(readers.map((r) => request(r, { type: 'history', channel: 'log', limit: 3 })));
    for (const reply of replies) {
      assert.deepEqual(reply.messages, [23, 24, 25].map((n) => ({ offset: n, data: `e${n}` })));
      assert.equal(reply.epoch, replies[0]!.epoch);
    }
    const all = await request(readers[1]!, { type: 'history', channel: 'log' });
    const offsets = (all.messages as Array<{ offset: number }>).map((m) => m.offset);
    assert.deepEqual(offsets, Array.from({ length: 20 }, (_, i) => i + 6));
    const res = await fetch(httpUrl(nodes[2]!, '/api/channels/log/history?limit=2'), { headers: { authorization: `Bearer ${API_KEY}` } });
    assert.equal(res.status, 200);
    const body = (await res.json()) as { messages: unknown[]; epoch: string; offset: number };
    assert.deepEqual(body.messages, [{ offset: 24, data: 'e24' }, { offset: 25, data: 'e25' }]);
    assert.equal(body.epoch, replies[0]!.epoch);
    assert.equal(body.offset, 25);
    closeAll(readers);
  } finally {
    p.close();
  }
});

test('a client that misses messages resubscribes with since on another node and gets exactly the missed ones', async () => {
  const p = await connectChannels(nodes[2]!);
  let c: TestClient = await connectChannels(nodes[0]!);
  try {
    const { epoch } = await subscribe(c, 'orders');
    for (let i = 1; i <= 4; i++) await publish(p, 'orders', i);
    await waitMessages(c, 'orders', 4);
    c.close();
    for (let i = 5; i <= 9; i++) await publish(p, 'orders', i);
    c = await connectChannels(nodes[1]!);
    const reply = await subscribe(c, 'orders', { offset: 4, epoch: epoch as string });
    assert.equal(reply.recovered, true);
    assert.equal(reply.offset, 9);
    assert.deepEqual(messagesOf(c, 'orders').map((m) => m.data), [5, 6, 7, 8, 9]);
    await publish(p, 'orders', 10);
    await waitMessages(c, 'orders', 6);
    assert.deepEqual(messagesOf(c, 'orders').map((m) => m.offset), [5, 6, 7, 8, 9, 10]);
  } finally {
    closeAll([p, c]);
  }
});

test('joining while messages flow from every node loses none and duplicates none', async () => {
  const pubs = await Promise.all(nodes.map((n) => connectChannels(n)));
  const clients: TestClient[] = [];
  try {
    let stop = false;
    const flow = (async () => {
      let i = 0;
      while (!stop) await Promise.all(pubs.map((p) => publish(p, 'rush', i++)));
    })();
    const seed = await connectChannels(nodes[0]!);
    clients.push(seed);
    const { epoch } = await subscribe(seed, 'rush');
    await waitMessages(seed, 'rush', 6);
    for (let i = 0; i < 6; i++) {
      const c = await connectChannels(nodes[i % 3]!);
      clients.push(c);
      const since = messagesOf(seed, 'rush').at(-1)!.offset as number;
      await subscribe(c, 'rush', i % 2 === 0 ? { offset: since - 2, epoch: epoch as string } : undefined);
    }
    stop = true;
    await flow;
    const last = await publish(pubs[0]!, 'rush', 'end');
    for (const c of clients) {
      await c.until((m) => m.some((x) => x.includes('"data":"end"')), 10_000, 'the end marker');
      const offsets = messagesOf(c, 'rush').map((m) => m.offset as number);
      const start = offsets[0]!;
      assert.deepEqual(offsets, Array.from({ length: last - start + 1 }, (_, k) => start + k));
    }
  } finally {
    closeAll([...pubs, ...clients]);
  }
});

test('when a channel\'s history is lost the epoch changes and recovery says recovered:false', async () => {
  const c = await connectChannels(nodes[0]!);
  try {
    const { epoch } = await subscribe(c, 'fragile');
    await publish(c, 'fragile', 1);
    await waitMessages(c, 'fragile', 1);
    // What a flush does to this channel (only this test's keys: the Redis is shared).
    await admin.del(`${busPrefix}:ch:{fragile}:meta`, `${busPrefix}:ch:{fragile}:log`);
    const other = await connectChannels(nodes[1]!);
    const reply = await subscribe(other, 'fragile', { offset: 1, epoch: epoch as string });
    assert.equal(reply.recovered, false);
    assert.notEqual(reply.epoch, epoch);
    assert.equal(reply.offset, 0);
    // The live subscriber sees the new epoch on the next message.
    await publish(other, 'fragile', 'again');
    const [, next] = await waitMessages(c, 'fragile', 2);
    assert.equal(next!.epoch, reply.epoch);
    assert.equal(next!.offset, 1);
    other.close();
  } finally {
    c.close();
  }
});

test('presence over Redis lists clients of every node with join and leave events', async () => {
  const a = await connectChannels(nodes[0]!);
  const b = await connectChannels(nodes[2]!);
  try {
    const [aId, bId] = [frames(a)[0]!.client, frames(b)[0]!.client];
    await subscribe(a, 'chat:r');
    await subscribe(b, 'chat:r');
    await a.json((f) => f.type === 'join' && f.client === bId);
    const list = await request(b, { type: 'presence', channel: 'chat:r' });
    assert.deepEqual((list.clients as Array<{ client: string }>).map((x) => x.client).sort(), [aId, bId].sort());
    const res = await fetch(httpUrl(nodes[1]!, '/api/channels/chat:r/presence'), { headers: { authorization: `Bearer ${API_KEY}` } });
    assert.equal(res.status, 200);
    assert.equal(((await res.json()) as { clients: unknown[] }).clients.length, 2);
    b.close();
    await a.json((f) => f.type === 'leave' && f.client === bId);
    const after = await request(a, { type: 'presence', channel: 'chat:r' });
    assert.deepEqual(after.clients, [{ client: aId, user: null }]);
  } finally {
    closeAll([a, b]);
  }
});

test('two fanout processes: HTTP publish on one reaches a subscriber on the other', async () => {
  const prefix = uniquePrefix('two');
  const procs = await Promise.all([1, 2].map((i) => forkFanoutServe(['--bus', REDIS_URL, '--bus-prefix', prefix, '--node-id', `two${i}`, '--api-key', API_KEY, '--drain-delay', '0'])));
  try {
    for (const p of procs) await waitReadyPort(p.port);
    const c = await connectChannels(procs[0]!.port);
    await subscribe(c, 'two');
    const res = await fetch(`http://127.0.0.1:${procs[1]!.port}/api/publish`, {
      method: 'POST',
      headers: { authorization: `Bearer ${API_KEY}` },
      body: JSON.stringify({ channel: 'two', data: 'across processes' }),
    });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { offset: 1 });
    const [m] = await waitMessages(c, 'two', 1);
    assert.equal(m!.data, 'across processes');
    c.close();
  } finally {
    await Promise.all(procs.map((p) => p.stop()));
    const keys = await admin.keys(`${prefix}:*`);
    if (keys.length) await admin.del(...keys);
  }
});

test('with Redis unreachable, publish answers unavailable (503 over HTTP) and subscribe too; the node does not crash', async () => {
  const node = await startNode({ bus: `redis://127.0.0.1:${await freePort()}`, busPrefix: uniquePrefix(), apiKey: API_KEY });
  const c = await connectChannels(node);
  try {
    const pub = await request(c, { type: 'publish', channel: 'x', data: 1 });
    assert.equal(pub.code, 'unavailable');
    const sub = await request(c, { type: 'subscribe', channel: 'x' });
    assert.equal(sub.code, 'unavailable');
    const hist = await request(c, { type: 'history', channel: 'x' });
    assert.equal(hist.code, 'unavailable');
    const res = await apiPublish(node, 'x', 1);
    assert.equal(res.status, 503);
    assert.equal(((await res.json()) as { error: string }).error, 'unavailable');
  } finally {
    c.close();
    await node.close();
  }
});

test('history pages back through Redis with before, at most 256 KB a page, and says more:true while older messages remain', async () => {
  const c = await connectChannels(nodes[0]!);
  try {
    const big = 'y'.repeat(60 * 1024);
    for (let i = 1; i <= 12; i++) await publish(c, 'pages', i % 2 === 0 ? `${i} ${big}` : i);
    const first = await request(c, { type: 'history', channel: 'pages' });
    const firstOffsets = (first.messages as Array<{ offset: number }>).map((m) => m.offset);
    assert.equal(first.more, true, 'six 60 KB messages do not fit in one page');
    assert.equal(firstOffsets.at(-1), 12);
    const all = [...firstOffsets];
    let page = first;
    while (page.more === true) {
      page = await request(c, { type: 'history', channel: 'pages', before: all[0] });
      all.unshift(...(page.messages as Array<{ offset: number }>).map((m) => m.offset));
    }
    assert.deepEqual(all, Array.from({ length: 12 }, (_, i) => i + 1));
    const limited = await request(c, { type: 'history', channel: 'pages', limit: 2, before: 4 });
    assert.deepEqual((limited.messages as Array<{ offset: number }>).map((m) => m.offset), [2, 3]);
    assert.equal(limited.more, true);
    const api = (await (await fetch(httpUrl(nodes[1]!, '/api/channels/pages/history?limit=2&before=2'), { headers: { authorization: `Bearer ${API_KEY}` } })).json()) as { messages: Array<{ offset: number }>; more?: boolean };
    assert.deepEqual([api.messages.map((m) => m.offset), api.more], [[1], undefined]);
  } finally {
    c.close();
  }
});

test('a storm of subscriptions on one channel shares a few store reads, and each client gets its own slice', async () => {
  const node = nodes[1]!;
  const store = (node.endpoint(CHANNEL_PATH) as ChannelEndpoint).service.channels;
  const p = await connectChannels(nodes[0]!);
  const clients = await Promise.all(Array.from({ length: 100 }, () => connectChannels(node)));
  try {
    const first = await subscribe(p, 'storm');
    for (let i = 1; i <= 40; i++) await publish(p, 'storm', i);
    const read = store.read.bind(store);
    let reads = 0;
    store.read = (...args) => {
      reads++;
      return read(...args);
    };
    const replies = Promise.all(
      clients.map((c, i) => {
        // Every client was somewhere else: offsets 0..39, some in another epoch, some without since.
        const since = i % 10 === 9 ? undefined : { offset: i % 40, epoch: i % 10 === 8 ? 'old' : (first.epoch as string) };
        return subscribe(c, 'storm', since).then((reply) => ({ reply, since }));
      }),
    );
    const live = publish(p, 'storm', 'live');
    const results = await replies;
    await live;
    store.read = read;
    assert.ok(reads <= 10, `${reads} reads for 100 subscriptions`);
    const end = await publish(p, 'storm', 'end');
    assert.equal(end, 42);
    for (const [i, { reply, since }] of results.entries()) {
      const c = clients[i]!;
      await c.until((m) => m.some((x) => x.includes('"data":"end"')), 5000, 'the end marker');
      const offsets = messagesOf(c, 'storm').map((m) => m.offset as number);
      if (since && reply.recovered) {
        assert.equal(offsets[0], since.offset + 1);
      } else {
        assert.equal(reply.recovered, since ? false : undefined);
        assert.equal(offsets[0], (reply.offset as number) + 1);
      }
      assert.deepEqual(offsets, Array.from({ length: 42 - offsets[0]! + 1 }, (_, k) => offsets[0]! + k), `client ${i}`);
    }
    assert.ok(results.some((r) => r.reply.recovered === true) && results.some((r) => r.reply.recovered === false));
  } finally {
    closeAll([p, ...clients]);
  }
});

test('with --history redis:// and a bus that is not that Redis, channels travel through the history Redis, in offset order', async () => {
  // Two nodes whose buses (separate memory buses) do not connect them at all: only the history Redis does.
  const prefix = uniquePrefix('hist');
  const a = await startNode({ bus: 'memory', history: REDIS_URL, busPrefix: prefix, nodeId: 'h1', presence: 'chat:*' });
  const b = await startNode({ bus: 'memory', history: REDIS_URL, busPrefix: prefix, nodeId: 'h2', presence: 'chat:*' });
  const clients: TestClient[] = [];
  try {
    const transports = [a, b].map((n) => (n.endpoint(CHANNEL_PATH) as ChannelEndpoint).service.link);
    await until(() => transports.every((t) => t.connected), { timeoutMs: 10_000, what: 'the history redis to connect' });
    const [sa, sb, pa, pb] = [await connectChannels(a), await connectChannels(b), await connectChannels(a), await connectChannels(b)];
    clients.push(sa!, sb!, pa!, pb!);
    const { epoch } = await subscribe(sa!, 'x');
    await subscribe(sb!, 'x');
    await Promise.all(Array.from({ length: 20 }, (_, i) => publish(i % 2 ? pa! : pb!, 'x', i)));
    for (const s of [sa!, sb!]) {
      const got = await waitMessages(s, 'x', 20);
      assert.deepEqual(got.map((m) => m.offset), Array.from({ length: 20 }, (_, i) => i + 1));
    }
    const late = await connectChannels(a);
    clients.push(late);
    const reply = await subscribe(late, 'x', { offset: 15, epoch: epoch as string });
    assert.equal(reply.recovered, true);
    assert.deepEqual(messagesOf(late, 'x').map((m) => m.offset), [16, 17, 18, 19, 20]);
    // Presence events travel the same way.
    const bId = frames(sb!)[0]!.client;
    await subscribe(sb!, 'chat:h');
    await subscribe(sa!, 'chat:h');
    const list = await request(sa!, { type: 'presence', channel: 'chat:h' });
    assert.ok((list.clients as Array<{ client: string }>).some((c) => c.client === bId));
    sb!.close();
    await sa!.json((f) => f.type === 'leave' && f.client === bId);
    // The history Redis is a route like the bus: its traffic is counted and timed the same way.
    const [ma, mb] = [await scrape(httpUrl(a).replace(/\/$/, '')), await scrape(httpUrl(b).replace(/\/$/, ''))];
    assert.equal(ma.value('fanout_messages_out_total', { kind: 'channel' }) + mb.value('fanout_messages_out_total', { kind: 'channel' }), 20);
    assert.equal(ma.value('fanout_bus_messages_in_total', { kind: 'channel' }) + mb.value('fanout_bus_messages_in_total', { kind: 'channel' }), 20, 'each message counted in by the node that did not publish it');
    for (const m of [ma, mb]) {
      assert.ok(m.value('fanout_messages_out_total', { kind: 'control' }) >= 1, 'fences of the subscriptions');
      assert.ok(m.value('fanout_publish_latency_seconds_count') >= 20, 'channel messages reaching sockets are timed');
    }
  } finally {
    closeAll(clients);
    await closeNodes([a, b]);
    const keys = await admin.keys(`${prefix}:*`);
    if (keys.length) await admin.del(...keys);
  }
});
