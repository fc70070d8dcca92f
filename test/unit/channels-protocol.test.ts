import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { FanoutNode } from '../../src/app.js';
import { connectChannels, frames, messagesOf, publish, request, subscribe, waitMessages, type Frame } from '../helpers/channels.js';
import { closeNodes, startNodes } from '../helpers/nodes.js';
import { closeAll, type TestClient } from '../helpers/ws-client.js';

let nodes: FanoutNode[];
before(async () => {
  nodes = await startNodes(3, { historySize: 50, presence: 'chat:*' });
});
after(() => closeNodes(nodes));

test('on connect the server sends connected with the client id and the node id', async () => {
  const c = await connectChannels(nodes[1]!);
  try {
    const hello = frames(c)[0]!;
    assert.equal(hello.type, 'connected');
    assert.equal(hello.node, 'n2');
    assert.match(String(hello.client), /^[0-9a-f-]{36}$/);
  } finally {
    c.close();
  }
});

test('a subscriber on one node receives, in offset order, what is published on the others, exactly once', async () => {
  const subs = await Promise.all(nodes.map((n) => connectChannels(n)));
  const pubs = await Promise.all([connectChannels(nodes[1]!), connectChannels(nodes[2]!)]);
  try {
    for (const s of subs) {
      const reply = await subscribe(s, 'news');
      assert.equal(reply.offset, 0);
      assert.equal(typeof reply.epoch, 'string');
      assert.equal(reply.recovered, undefined);
    }
    const acks = await Promise.all(Array.from({ length: 30 }, (_, i) => publish(pubs[i % 2]!, 'news', { n: i })));
    assert.deepEqual([...acks].sort((a, b) => a - b), Array.from({ length: 30 }, (_, i) => i + 1));
    for (const s of subs) {
      const got = await waitMessages(s, 'news', 30);
      assert.deepEqual(got.map((m) => m.offset), Array.from({ length: 30 }, (_, i) => i + 1));
      // The data published with offset k is the data delivered with offset k.
      for (const m of got) assert.equal(acks.indexOf(m.offset as number), (m.data as { n: number }).n);
    }
    // A marker proves nothing more (no duplicate) came before it.
    await publish(pubs[0]!, 'news', 'end');
    for (const s of subs) {
      await waitMessages(s, 'news', 31);
      assert.equal(messagesOf(s, 'news').length, 31);
    }
    // A publisher that did not subscribe gets only its acks.
    assert.equal(messagesOf(pubs[0]!, 'news').length, 0);
  } finally {
    closeAll([...subs, ...pubs]);
  }
});

test('message frames carry channel, offset, epoch and the data as published (any JSON)', async () => {
  const [s, p] = [await connectChannels(nodes[0]!), await connectChannels(nodes[2]!)];
  try {
    const { epoch } = await subscribe(s, 'json');
    const values = [null, true, 0, -1.5, 'text ✓', [1, [2]], { a: { b: [null] } }];
    for (const v of values) await publish(p, 'json', v);
    const got = await waitMessages(s, 'json', values.length);
    assert.deepEqual(got.map((m) => m.data), values);
    for (const m of got) assert.deepEqual(Object.keys(m), ['type', 'channel', 'offset', 'epoch', 'data']);
    assert.ok(got.every((m) => m.epoch === epoch));
  } finally {
    closeAll([s, p]);
  }
});

test('history returns the latest messages oldest first, capped by limit and --history-size', async () => {
  const p = await connectChannels(nodes[0]!);
  const r = await connectChannels(nodes[2]!);
  try {
    for (let i = 1; i <= 60; i++) await publish(p, 'hist', i);
    const five = await request(r, { type: 'history', channel: 'hist', limit: 5 });
    assert.equal(five.type, 'history');
    assert.equal(five.channel, 'hist');
    assert.deepEqual(five.messages, [56, 57, 58, 59, 60].map((n) => ({ offset: n, data: n })));
    const all = await request(r, { type: 'history', channel: 'hist' });
    const messages = all.messages as Array<{ offset: number }>;
    assert.equal(messages.length, 50);
    assert.equal(messages[0]!.offset, 11);
    assert.equal(messages[49]!.offset, 60);
    const none = await request(r, { type: 'history', channel: 'never-used' });
    assert.deepEqual(none.messages, []);
  } finally {
    closeAll([p, r]);
  }
});

test('resubscribing with since on another node delivers exactly the missed messages, then live ones', async () => {
  const p = await connectChannels(nodes[2]!);
  let c = await connectChannels(nodes[0]!);
  try {
    const first = await subscribe(c, 'room');
    for (let i = 1; i <= 3; i++) await publish(p, 'room', `m${i}`);
    await waitMessages(c, 'room', 3);
    const last = messagesOf(c, 'room').at(-1)!;
    c.close();
    for (let i = 4; i <= 7; i++) await publish(p, 'room', `m${i}`);
    c = await connectChannels(nodes[1]!);
    const reply = await subscribe(c, 'room', { offset: last.offset as number, epoch: first.epoch as string });
    assert.equal(reply.recovered, true);
    assert.equal(reply.offset, 7);
    const recovered = messagesOf(c, 'room');
    assert.deepEqual(recovered.map((m) => m.data), ['m4', 'm5', 'm6', 'm7']);
    // Recovered messages come before the subscribed reply.
    const types = frames(c).map((f) => f.type);
    assert.ok(types.lastIndexOf('message') < types.indexOf('subscribed'));
    await publish(p, 'room', 'm8');
    await waitMessages(c, 'room', 5);
    assert.deepEqual(messagesOf(c, 'room').map((m) => m.offset), [4, 5, 6, 7, 8]);
  } finally {
    closeAll([p, c]);
  }
});

test('recovery says recovered:false when history no longer covers the gap or the epoch changed', async () => {
  const p = await connectChannels(nodes[0]!);
  const c = await connectChannels(nodes[1]!);
  try {
    const { epoch } = await subscribe(c, 'gap');
    for (let i = 1; i <= 60; i++) await publish(p, 'gap', i);
    await waitMessages(c, 'gap', 60);
    const c2 = await connectChannels(nodes[2]!);
    const old = await subscribe(c2, 'gap', { offset: 2, epoch: epoch as string });
    assert.equal(old.recovered, false);
    assert.equal(old.offset, 60);
    assert.equal(messagesOf(c2, 'gap').length, 0, 'nothing sent when the gap cannot be covered');
    const c3 = await connectChannels(nodes[2]!);
    const other = await subscribe(c3, 'gap', { offset: 59, epoch: 'another-epoch' });
    assert.equal(other.recovered, false);
    const c4 = await connectChannels(nodes[0]!);
    const upToDate = await subscribe(c4, 'gap', { offset: 60, epoch: epoch as string });
    assert.equal(upToDate.recovered, true);
    closeAll([c2, c3, c4]);
  } finally {
    closeAll([p, c]);
  }
});

test('subscribing while messages flow loses none and duplicates none', async () => {
  const p = await connectChannels(nodes[0]!);
  const clients: TestClient[] = [];
  try {
    let stop = false;
    let sent = 0;
    const flow = (async () => {
      while (!stop) {
        await Promise.all(Array.from({ length: 5 }, () => publish(p, 'busy', ++sent)));
      }
    })();
    const seed = await connectChannels(nodes[1]!);
    clients.push(seed);
    const { epoch } = await subscribe(seed, 'busy');
    await waitMessages(seed, 'busy', 5);
    for (let i = 0; i < 6; i++) {
      const c = await connectChannels(nodes[i % 3]!);
      clients.push(c);
      // Half start from a past offset (recovery), half from now.
      await subscribe(c, 'busy', i % 2 === 0 ? { offset: 3, epoch: epoch as string } : undefined);
    }
    stop = true;
    await flow;
    const total = (await publish(p, 'busy', 'end')) as number;
    for (const c of clients) {
      await c.until((m) => m.some((x) => x.includes('"data":"end"')), 5000, 'the end marker');
      const offsets = messagesOf(c, 'busy').map((m) => m.offset as number);
      const start = offsets[0]!;
      assert.deepEqual(offsets, Array.from({ length: total - start + 1 }, (_, k) => start + k), 'contiguous, in order, no duplicates');
      const sub = frames(c).find((f) => f.type === 'subscribed')!;
      if (sub.recovered === true) assert.equal(start, 4);
      else assert.equal(start, (sub.offset as number) + 1);
    }
  } finally {
    closeAll([p, ...clients]);
  }
});

test('unsubscribe answers unsubscribed and stops delivery; unsubscribing again is not_found', async () => {
  const [c, p] = [await connectChannels(nodes[0]!), await connectChannels(nodes[1]!)];
  try {
    await subscribe(c, 'quiet');
    await publish(p, 'quiet', 1);
    await waitMessages(c, 'quiet', 1);
    const reply = await request(c, { type: 'unsubscribe', channel: 'quiet' });
    assert.equal(reply.type, 'unsubscribed');
    assert.equal(reply.channel, 'quiet');
    await publish(p, 'quiet', 2);
    // A second channel's message proves delivery continues; nothing more came on 'quiet'.
    await subscribe(c, 'other');
    await publish(p, 'other', 'x');
    await waitMessages(c, 'other', 1);
    assert.equal(messagesOf(c, 'quiet').length, 1);
    const again = await request(c, { type: 'unsubscribe', channel: 'quiet' });
    assert.equal(again.type, 'error');
    assert.equal(again.code, 'not_found');
    const twice = await request(c, { type: 'subscribe', channel: 'other' });
    assert.equal(twice.code, 'bad_request');
  } finally {
    closeAll([c, p]);
  }
});

test('junk gets bad_request error frames, never a crash', async () => {
  const c = await connectChannels(nodes[0]!);
  try {
    const junk = [
      'not json',
      '[1,2]',
      '42',
      '{"type":"dance","channel":"x","id":1}',
      '{"type":"subscribe","id":2}',
      '{"type":"subscribe","channel":"","id":3}',
      '{"type":"subscribe","channel":"has space","id":4}',
      '{"type":"subscribe","channel":"a*","id":5}',
      '{"type":"subscribe","channel":7,"id":6}',
      '{"type":"publish","channel":"x","id":7}',
      '{"type":"subscribe","channel":"x","since":{"offset":-1,"epoch":"e"},"id":8}',
      '{"type":"history","channel":"x","limit":"ten","id":9}',
      '{"type":"subscribe","channel":"x","id":"one"}',
      `{"type":"subscribe","channel":"${'x'.repeat(201)}","id":10}`,
    ];
    for (const j of junk) c.send(j);
    c.ws.send(Buffer.from([0, 1, 2]), { binary: true });
    await c.until((m) => m.length >= 1 + junk.length + 1, 5000, 'an answer to every frame');
    const errors = frames(c).slice(1);
    assert.equal(errors.length, junk.length + 1);
    for (const e of errors) {
      assert.equal(e.type, 'error');
      assert.equal(e.code, 'bad_request');
      assert.equal(typeof e.message, 'string');
    }
    // Ids that were valid are echoed.
    assert.deepEqual(errors.filter((e) => e.id !== undefined).map((e) => e.id), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    // Still serving.
    const reply = await subscribe(c, 'after-junk');
    assert.equal(reply.type, 'subscribed');
  } finally {
    c.close();
  }
});

test('presence: join and leave events, and the presence list, across nodes', async () => {
  const a = await connectChannels(nodes[0]!);
  const b = await connectChannels(nodes[1]!);
  try {
    const aId = frames(a)[0]!.client as string;
    const bId = frames(b)[0]!.client as string;
    await subscribe(a, 'chat:lobby');
    await a.json((f) => f.type === 'join' && f.client === aId);
    await subscribe(b, 'chat:lobby');
    const join = await a.json<Frame>((f) => f.type === 'join' && f.client === bId);
    assert.deepEqual(join, { type: 'join', channel: 'chat:lobby', client: bId, user: null });
    const c = await connectChannels(nodes[2]!);
    const list = await request(c, { type: 'presence', channel: 'chat:lobby' });
    assert.equal(list.type, 'presence');
    assert.deepEqual(
      (list.clients as Frame[]).map((x) => x.client).sort(),
      [aId, bId].sort(),
    );
    c.close();
    b.close();
    const leave = await a.json<Frame>((f) => f.type === 'leave' && f.client === bId);
    assert.equal(leave.channel, 'chat:lobby');
    const after = await request(a, { type: 'presence', channel: 'chat:lobby' });
    assert.deepEqual(after.clients, [{ client: aId, user: null }]);
    // A channel without presence configured.
    const none = await request(a, { type: 'presence', channel: 'news' });
    assert.equal(none.type, 'error');
    assert.equal(none.code, 'not_found');
  } finally {
    closeAll([a, b]);
  }
});
