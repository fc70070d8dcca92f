import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { test } from 'node:test';
import { MemoryBus } from '../../src/brokers/memory/bus.js';
import type { ChannelEndpoint } from '../../src/channels/endpoint.js';
import { frameText, STREAM_HIGH_WATER } from '../../src/node/outbox.js';
import { ANONYMOUS, Client } from '../../src/transport/client.js';
import { Receiver } from '../../src/transport/ws-internals.js';
import { CHANNEL_PATH } from '../../src/protocol/frames.js';
import { sleep, until } from '../../harness/wait.js';
import { connectChannels, messagesOf, publish, request, subscribe, waitMessages } from '../helpers/channels.js';
import { closeNodes, httpUrl, startNode, startNodes, wsUrl } from '../helpers/nodes.js';
import { SECRET, sign } from '../helpers/security.js';
import { closeAll, connect } from '../helpers/ws-client.js';

test('forbidden: anonymous access follows --anonymous-subscribe and --anonymous-publish', async () => {
  const [node] = await startNodes(1, { anonymousSubscribe: 'public:*,news', anonymousPublish: 'public:chat:*' });
  const c = await connectChannels(node!);
  try {
    assert.equal((await subscribe(c, 'public:feed')).type, 'subscribed');
    assert.equal((await subscribe(c, 'news')).type, 'subscribed');
    for (const frame of [
      { type: 'subscribe', channel: 'private:x' },
      { type: 'subscribe', channel: 'newsroom' },
      { type: 'history', channel: 'private:x' },
      { type: 'presence', channel: 'private:x' },
      { type: 'publish', channel: 'public:feed', data: 1 },
      { type: 'publish', channel: 'news', data: 1 },
    ]) {
      const reply = await request(c, frame);
      assert.equal(reply.type, 'error', JSON.stringify(frame));
      assert.equal(reply.code, 'forbidden', JSON.stringify(frame));
      assert.equal(reply.channel, frame.channel);
    }
    assert.equal(await publish(c, 'public:chat:1', 'ok'), 1);
  } finally {
    c.close();
    await closeNodes([node!]);
  }
});

test('with a JWT key configured, anonymous clients get nothing unless a namespace is opened to them', async () => {
  // Decided on the node's authorizer directly: the upgrade gate (security) decides who gets a socket.
  const node = await startNode({ jwtSecret: 'secret', anonymousSubscribe: 'public:*' });
  try {
    const { auth } = (node.endpoint(CHANNEL_PATH) as ChannelEndpoint).service;
    assert.ok(!auth.allowed(ANONYMOUS, 'subscribe', 'chat:1'));
    assert.ok(!auth.allowed(ANONYMOUS, 'publish', 'public:x'));
    assert.ok(auth.allowed(ANONYMOUS, 'subscribe', 'public:x'));
    const token = { user: 'u1', channels: ['chat:*'], expiresAt: undefined };
    assert.ok(auth.allowed(token, 'publish', 'chat:1'));
    assert.ok(!auth.allowed(token, 'publish', 'other'));
  } finally {
    await node.close();
  }
});

test('without JWT and without --anonymous-* flags the hub is open', async () => {
  const node = await startNode();
  try {
    const { auth } = (node.endpoint(CHANNEL_PATH) as ChannelEndpoint).service;
    assert.ok(auth.allowed(ANONYMOUS, 'subscribe', 'any:thing'));
    assert.ok(auth.allowed(ANONYMOUS, 'publish', 'any:thing'));
  } finally {
    await node.close();
  }
});

test('unavailable: with the bus down, publish and subscribe answer unavailable and nothing is stored', async () => {
  const [a, b] = await startNodes(2);
  const sub = await connectChannels(b!);
  const c = await connectChannels(a!);
  try {
    await subscribe(sub, 'down');
    assert.equal(await publish(c, 'down', 'first'), 1);
    (a!.bus as MemoryBus).disconnect();
    const reply = await request(c, { type: 'publish', channel: 'down', data: 'lost?' });
    assert.equal(reply.type, 'error');
    assert.equal(reply.code, 'unavailable');
    const s = await request(c, { type: 'subscribe', channel: 'down' });
    assert.equal(s.code, 'unavailable');
    const api = await fetch(httpUrl(a!, '/api/publish'), { method: 'POST', body: '{}' });
    assert.equal(api.status, 404, 'the API is off without --api-key');
    await api.arrayBuffer();
    (a!.bus as MemoryBus).reconnect();
    assert.equal(await publish(c, 'down', 'second'), 2, 'the refused publish took no offset');
    const got = await waitMessages(sub, 'down', 2);
    assert.deepEqual(got.map((m) => m.data), ['first', 'second']);
  } finally {
    closeAll([sub, c]);
    await closeNodes([a!, b!]);
  }
});

test('rate_limited: frames over --rate-limit get an error frame echoing their id and are dropped; the socket stays open', async () => {
  const node = await startNode({ rateLimit: 2 });
  const c = await connectChannels(node);
  try {
    for (let id = 1; id <= 6; id++) c.sendJson({ type: 'publish', channel: 'limited', data: id, id });
    await c.until((m) => m.length >= 7, 5000, 'an answer to each of the 6 frames');
    const answers = c.messages.slice(1).map((m) => JSON.parse(m) as { type: string; id: number; code?: string; message?: string });
    const acked = answers.filter((a) => a.type === 'ack').map((a) => a.id);
    const limited = answers.filter((a) => a.type === 'error' && a.code === 'rate_limited');
    assert.deepEqual(acked, [1, 2], 'the burst of --rate-limit frames goes through');
    assert.deepEqual(limited.map((a) => a.id), [3, 4, 5, 6]);
    assert.match(String(limited[0]!.message), /rate-limit/);
    // The dropped publishes were not stored; the socket still works a second later (a fixed wait
    // on purpose: the rate limit's window passes).
    await sleep(1100);
    const history = await request(c, { type: 'history', channel: 'limited' });
    assert.deepEqual((history.messages as Array<{ data: number }>).map((m) => m.data), [1, 2]);
    assert.equal(c.closeCode, undefined);
  } finally {
    c.close();
    await node.close();
  }
});

test('rate_limited: frames over --rate-limit-bytes get the same error frame; persistent abuse in bytes closes 1008', async () => {
  // Burst: 16 × --max-payload = 16 384 bytes; the rate (100 bytes/s) refills next to nothing meanwhile.
  const node = await startNode({ maxPayload: 1024, rateLimitBytes: 100 });
  const c = await connectChannels(node);
  try {
    const frameOf = (id: number) => JSON.stringify({ type: 'publish', channel: 'bytes', data: 'x'.repeat(950), id: 900_000 + id });
    const size = Buffer.byteLength(frameOf(1));
    const fit = Math.floor((16 * 1024) / size);
    for (let id = 1; id <= 20; id++) c.send(frameOf(id));
    await c.until((m) => m.length >= 21, 5000, 'an answer to each of the 20 frames');
    const answers = c.messages.slice(1).map((m) => JSON.parse(m) as { type: string; id: number; code?: string; message?: string });
    assert.deepEqual(
      answers.filter((a) => a.type === 'ack').map((a) => a.id - 900_000),
      Array.from({ length: fit }, (_, i) => i + 1),
      'the burst of 16 × --max-payload bytes goes through',
    );
    const limited = answers.filter((a) => a.type === 'error' && a.code === 'rate_limited');
    assert.equal(limited.length, 20 - fit);
    assert.equal(limited[0]!.id, 900_000 + fit + 1, 'the error echoes the frame id');
    assert.match(String(limited[0]!.message), /over --rate-limit-bytes \(100 bytes\/s\)/);
    const history = await request(c, { type: 'history', channel: 'bytes' });
    assert.equal((history.messages as unknown[]).length, fit, 'the refused frames were not stored');
    // Dropping more than the burst's worth within 10 s is abuse: the socket closes 1008.
    for (let id = 21; id <= 40; id++) c.send(frameOf(id));
    assert.equal(await c.waitClose(), 1008);
  } finally {
    c.close();
    await node.close();
  }
});

test('HTTP API: 200 with the offset, 401 without or with a wrong key, 400 for a bad body, 413 over the cap, 503 with the bus down', async () => {
  const [node] = await startNodes(1, { apiKey: 'k3y', maxPayload: 1024, presence: 'chat:*' });
  const url = httpUrl(node!, '/api/publish');
  const auth = { authorization: 'Bearer k3y' };
  const post = (body: string, headers: Record<string, string> = auth) => fetch(url, { method: 'POST', headers, body });
  const sub = await connectChannels(node!);
  try {
    await subscribe(sub, 'api');
    let res = await post(JSON.stringify({ channel: 'api', data: { hello: ['world'] } }));
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { offset: 1 });
    const [m] = await waitMessages(sub, 'api', 1);
    assert.deepEqual(m!.data, { hello: ['world'] });

    const wrong: Array<Record<string, string>> = [{}, { authorization: 'Bearer nope' }, { authorization: 'k3y' }, { authorization: 'Basic azN5' }];
    for (const headers of wrong) {
      res = await post(JSON.stringify({ channel: 'api', data: 1 }), headers);
      assert.equal(res.status, 401, JSON.stringify(headers));
      assert.equal(((await res.json()) as { error: string }).error, 'unauthorized');
    }
    for (const body of ['not json', '[]', '{"data":1}', '{"channel":"a b","data":1}', '{"channel":"api"}']) {
      res = await post(body);
      assert.equal(res.status, 400, body);
      assert.equal(((await res.json()) as { error: string }).error, 'bad_request');
    }
    res = await post(JSON.stringify({ channel: 'api', data: 'x'.repeat(2000) }));
    assert.equal(res.status, 413);
    await res.arrayBuffer();

    res = await fetch(httpUrl(node!, '/api/channels/api/history?limit=5'), { headers: auth });
    assert.equal(res.status, 200);
    const history = (await res.json()) as { messages: unknown[]; epoch: string };
    assert.deepEqual(history.messages, [{ offset: 1, data: { hello: ['world'] } }]);
    res = await fetch(httpUrl(node!, '/api/channels/api/history?limit=-1'), { headers: auth });
    assert.equal(res.status, 400);
    await res.arrayBuffer();
    res = await fetch(httpUrl(node!, '/api/channels/api/history'));
    assert.equal(res.status, 401);
    await res.arrayBuffer();
    res = await fetch(httpUrl(node!, '/api/channels/api/presence'), { headers: auth });
    assert.equal(res.status, 404, 'no presence on this channel');
    await res.arrayBuffer();
    res = await fetch(httpUrl(node!, '/api/channels/chat:1/presence'), { headers: auth });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { channel: 'chat:1', clients: [] });

    (node!.bus as MemoryBus).disconnect();
    res = await post(JSON.stringify({ channel: 'api', data: 2 }));
    assert.equal(res.status, 503);
    assert.equal(((await res.json()) as { error: string }).error, 'unavailable');
    (node!.bus as MemoryBus).reconnect();
    assert.equal(messagesOf(sub, 'api').length, 1);
  } finally {
    sub.close();
    await closeNodes([node!]);
  }
});

test('with JWT: the token\'s channels claim decides subscribe and publish; presence carries its sub', async () => {
  const node = await startNode({ jwtSecret: SECRET, presence: 'chat:*', anonymousSubscribe: 'public:*' });
  const token = await sign({ channels: ['chat:*', 'user:alice'] }, { sub: 'alice' });
  const c = await connect(wsUrl(node, `${CHANNEL_PATH}?token=${token}`));
  try {
    await c.json((f) => f.type === 'connected');
    assert.equal((await subscribe(c, 'chat:1')).type, 'subscribed');
    const join = await c.json<Record<string, unknown>>((f) => f.type === 'join');
    assert.equal(join.user, 'alice');
    assert.equal(await publish(c, 'chat:1', 'hi'), 1);
    assert.equal(await publish(c, 'user:alice', 'me'), 1);
    assert.equal((await subscribe(c, 'public:news')).type, 'subscribed', 'the anonymous namespace is open to token holders too');
    for (const frame of [
      { type: 'subscribe', channel: 'admin:1' },
      { type: 'publish', channel: 'user:bob', data: 1 },
      { type: 'publish', channel: 'public:news', data: 1 },
      { type: 'history', channel: 'admin:1' },
    ]) {
      const reply = await request(c, frame);
      assert.equal(reply.code, 'forbidden', JSON.stringify(frame));
    }
    const list = await request(c, { type: 'presence', channel: 'chat:1' });
    assert.deepEqual((list.clients as Array<{ user: string }>).map((x) => x.user), ['alice']);
  } finally {
    c.close();
    await node.close();
  }
});

test('data nested past 100 levels is a bad request over the socket and the HTTP API, never "unavailable", and nothing is published', async () => {
  const node = await startNode({ apiKey: 'k' });
  const [c, watcher] = [await connectChannels(node), await connectChannels(node)];
  try {
    await subscribe(watcher, 'deep');
    const deep = '['.repeat(10_000) + ']'.repeat(10_000);
    c.ws.send(`{"type":"publish","channel":"deep","id":7,"data":${deep}}`);
    const reply = await c.json((f) => f.id === 7);
    assert.deepEqual([reply.type, reply.code, reply.message], ['error', 'bad_request', '"data" nests deeper than 100 levels']);
    const res = await fetch(httpUrl(node, '/api/publish'), {
      method: 'POST',
      headers: { authorization: 'Bearer k', 'content-type': 'application/json' },
      body: `{"channel":"deep","data":${deep}}`,
    });
    assert.equal(res.status, 400);
    assert.deepEqual(await res.json(), { error: 'bad_request', message: '"data" nests deeper than 100 levels' });
    // 100 levels are fine; the first message the watcher sees is that one.
    assert.equal(await publish(c, 'deep', JSON.parse('['.repeat(99) + '1' + ']'.repeat(99))), 1);
    assert.equal((await waitMessages(watcher, 'deep', 1))[0]!.offset, 1);
  } finally {
    closeAll([c, watcher]);
    await node.close();
  }
});

test('a subscribe with since is a reply like a history page: refused (rate_limited) while the connection\'s unsent replies fill --max-buffered', async () => {
  const node = await startNode({ maxBuffered: 1 << 20 });
  try {
    const endpoint = node.endpoint(CHANNEL_PATH) as ChannelEndpoint;
    // A connection as the endpoint sees it, on a socket that records what it is sent and holds
    // `writableLength` unsent bytes until the test drains it.
    const written: Buffer[] = [];
    const socket = Object.assign(new EventEmitter(), { write: (b: Buffer) => written.push(b), writableLength: 0, destroyed: false, setNoDelay() {} });
    const client = new Client('c-1', { readyState: 1, close() {} } as never, socket as never, CHANNEL_PATH, '127.0.0.1', undefined, ANONYMOUS);
    const replies = (): Array<Record<string, unknown>> => {
      const out: Array<Record<string, unknown>> = [];
      const receiver = new Receiver({ isServer: false });
      receiver.on('message', (data: Buffer) => out.push(JSON.parse(data.toString()) as Record<string, unknown>));
      receiver.write(Buffer.concat(written));
      return out;
    };
    const ask = async (id: number, channel: string): Promise<Record<string, unknown>> => {
      endpoint.message(client, Buffer.from(JSON.stringify({ type: 'subscribe', channel, id, since: { offset: 0, epoch: 'e' } })), false);
      await until(() => replies().some((r) => r.id === id), { timeoutMs: 5000, what: `the answer to ${id}` });
      node.outbox.flush();
      return replies().find((r) => r.id === id)!;
    };
    // 2 MB of an earlier reply still unsent (the socket is full, the outbox holds the reply): a
    // recovery may not pile more on top.
    socket.writableLength = STREAM_HIGH_WATER;
    node.outbox.reply(client, frameText(JSON.stringify({ type: 'earlier', data: 'x'.repeat(2 << 20) })));
    node.outbox.flush();
    assert.ok(node.outbox.holding(client), 'the earlier reply waits for the socket');
    endpoint.message(client, Buffer.from(JSON.stringify({ type: 'subscribe', channel: 'a', id: 1, since: { offset: 0, epoch: 'e' } })), false);
    // The answer queues behind the earlier reply; the client reads, and both go out in order.
    socket.writableLength = 0;
    socket.emit('drain');
    node.outbox.flush();
    assert.equal(node.outbox.holding(client), false);
    assert.deepEqual(replies().map((r) => r.type).slice(-2), ['earlier', 'error'], 'in the order they were queued');
    const refused = replies().find((r) => r.id === 1)!;
    assert.deepEqual([refused.type, refused.code], ['error', 'rate_limited']);
    // Once the replies are out, the same request runs.
    assert.equal((await ask(2, 'b')).type, 'subscribed');
    assert.equal(endpoint.budget.inFlight(client), 0, 'what the recovery reserved is given back once it is live');
    assert.equal(endpoint.budget.size, 0, 'and the budget keeps nothing for a connection with nothing in flight');
  } finally {
    await node.close();
  }
});
