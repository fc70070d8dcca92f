/**
 * Large replies follow the socket's backpressure: a client that reads gets a recovery far over
 * --max-buffered and stays connected; a client that stops reading is still cut at --max-buffered
 * by the frames it did not ask for.
 */
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { after, before, test } from 'node:test';
import type { FanoutNode } from '../../src/app.js';
import { connectChannels, publish, subscribe } from '../helpers/channels.js';
import { scrapeUntil } from '../helpers/metrics.js';
import { httpUrl, startNode } from '../helpers/nodes.js';
import { closeAll, type TestClient } from '../helpers/ws-client.js';

const MAX_BUFFERED = 1024 * 1024;
const BIG = 'x'.repeat(60 * 1024);
let node: FanoutNode;
let publisher: TestClient;
let epoch: string;

before(async () => {
  // 6 MB of history from one publisher, faster than --rate-limit-bytes allows: the limit is not what is tested here.
  node = await startNode({ maxBuffered: MAX_BUFFERED, historySize: 100, maxPayload: 65536, heartbeat: 0, rateLimitBytes: 0 });
  publisher = await connectChannels(node);
  epoch = (await subscribe(publisher, 'big')).epoch as string;
  // 100 messages of 60 KB: a recovery from offset 0 is about 6 MB, six times --max-buffered.
  for (let i = 1; i <= 100; i++) await publish(publisher, 'big', `${i} ${BIG}`);
});
after(async () => {
  publisher.close();
  await node.close();
});

/** Counts `message` frames of `channel` without parsing 60 KB frames over and over. */
function counter(client: TestClient, channel: string): { count: () => number; offsets: number[] } {
  const offsets: number[] = [];
  client.ws.on('message', (data: Buffer) => {
    const head = data.toString('utf8', 0, 80);
    if (!head.startsWith(`{"type":"message","channel":"${channel}"`)) return;
    offsets.push(Number(/"offset":(\d+)/.exec(head)![1]));
  });
  return { count: () => offsets.length, offsets };
}

test('a reader that recovers 6 MB of history with --max-buffered 1 MiB gets every message and stays connected', async () => {
  const reader = await connectChannels(node);
  try {
    const seen = counter(reader, 'big');
    const reply = await subscribe(reader, 'big', { offset: 0, epoch });
    assert.equal(reply.recovered, true);
    await reader.until(() => seen.count() >= 100, 20_000, 'the recovered messages');
    assert.deepEqual(seen.offsets, Array.from({ length: 100 }, (_, i) => i + 1));
    // Live messages follow the recovery, in order, and the reader is still there.
    await publish(publisher, 'big', 'live');
    await reader.until(() => seen.count() >= 101, 5000, 'the live message');
    assert.equal(seen.offsets[100], 101);
    assert.equal(reader.closeCode, undefined, 'a client that reads is never cut as a slow consumer');
  } finally {
    reader.close();
  }
});

test('a client that asks for a large recovery and stops reading is cut by what it did not ask for, at --max-buffered', async () => {
  const stuck = await connectChannels(node);
  const base = httpUrl(node).replace(/\/$/, '');
  try {
    // It asks for the whole history (the first test's live message pushed offset 1 out of it)
    // and reads nothing from then on: the recovery waits in the node behind its full socket.
    stuck.sendJson({ type: 'subscribe', channel: 'big', since: { offset: 1, epoch } });
    (stuck.ws as unknown as { _socket: Socket })._socket.pause();
    // Live traffic it did not ask for piles up behind the recovery, until the node cuts it.
    let cut = false;
    for (let i = 0; i < 400 && !cut; i++) {
      await publish(publisher, 'big', `live ${i} ${BIG}`);
      if (i % 10 === 9) cut = (await scrapeUntil(base, () => true)).value('fanout_slow_consumer_closes_total') >= 1;
    }
    const m = await scrapeUntil(base, (s) => s.value('fanout_slow_consumer_closes_total') >= 1, 5000);
    assert.equal(m.value('fanout_slow_consumer_closes_total', { endpoint: '/ws/v1' }), 1);
  } finally {
    closeAll([stuck]);
  }
});

test('a history request gets at most 256 KB of messages, the newest, with more:true; pipelined requests past --max-buffered are refused at once', async () => {
  const client = await connectChannels(node);
  try {
    client.sendJson({ type: 'history', channel: 'big', id: 1 });
    const page = await client.json((f) => f.id === 1, 10_000);
    const messages = page.messages as Array<{ offset: number; data: string }>;
    assert.equal(page.type, 'history');
    assert.equal(page.more, true);
    assert.ok(messages.length >= 1 && messages.length <= 4, `${messages.length} messages of 60 KB`);
    assert.equal(messages.at(-1)!.offset, page.offset, 'the newest messages');
    // Paging back with before = the first offset of each page walks the whole retained history once.
    const offsets = messages.map((m) => m.offset);
    let next = page;
    for (let id = 2; next.more === true && id < 100; id++) {
      client.sendJson({ type: 'history', channel: 'big', id, before: (next.messages as Array<{ offset: number }>)[0]!.offset });
      next = await client.json((f) => f.id === id, 10_000);
      offsets.unshift(...(next.messages as Array<{ offset: number }>).map((m) => m.offset));
    }
    assert.equal(next.more, undefined, 'the last page says nothing more');
    assert.deepEqual(offsets, Array.from({ length: 100 }, (_, i) => (page.offset as number) - 99 + i), 'every retained message once, in order');
    // Twenty requests at once, each up to 256 KB of reply: only what fits in --max-buffered runs.
    for (let id = 10; id < 30; id++) client.sendJson({ type: 'history', channel: 'big', id });
    const replies = await Promise.all(Array.from({ length: 20 }, (_, i) => client.json((f) => f.id === 10 + i, 10_000)));
    const refused = replies.filter((r) => r.type === 'error' && r.code === 'rate_limited');
    const served = replies.filter((r) => r.type === 'history');
    assert.equal(refused.length + served.length, 20);
    // How many run depends on how fast the kernel takes the first replies; never all of them.
    assert.ok(served.length >= 1 && refused.length >= 1, `${served.length} served, ${refused.length} refused`);
    assert.match(String(refused[0]!.message), /too many requests in flight/);
    // Once the replies are read, the connection has room again.
    client.sendJson({ type: 'history', channel: 'big', id: 99, limit: 1 });
    assert.equal((await client.json((f) => f.id === 99, 10_000)).type, 'history');
  } finally {
    client.close();
  }
});
