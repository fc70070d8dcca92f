/**
 * The SSE transport of /ws/v1 (docs/protocol.md, "SSE transport"): two in-process nodes on one
 * Redis (bus and history), real HTTP streams read with fetch, real WebSocket clients beside them.
 * A session on one node takes POSTs on the other (forwarded over the bus), resumes with
 * Last-Event-ID, runs a POST sent again with the same `?seq=` once, and keeps the limits a socket
 * keeps; plain EventSource mode recovers every channel on another node from its Last-Event-ID.
 */
import assert from 'node:assert/strict';
import { connect as netConnect } from 'node:net';
import { after, before, test } from 'node:test';
import type { FanoutNode } from '../../src/app.js';
import { until } from '../../harness/wait.js';
import { REDIS_URL } from '../helpers/brokers.js';
import { connectChannels, request, waitMessages } from '../helpers/channels.js';
import { scrapeUntil } from '../helpers/metrics.js';
import { closeNodes, httpUrl, startNode, uniquePrefix, waitNodesReady, type ConfigInput } from '../helpers/nodes.js';
import { postFrames, SseStream, type Frame } from '../helpers/sse-client.js';
import { sign, SECRET } from '../helpers/security.js';
import { closeAll, type TestClient } from '../helpers/ws-client.js';
import { FanoutClient } from '../../client/index.js';
import { startHaproxy } from '../../harness/haproxy.js';
import { collect, connected } from '../helpers/sdk.js';

const started: FanoutNode[] = [];
let a: FanoutNode;
let b: FanoutNode;

async function pair(overrides: ConfigInput = {}): Promise<[FanoutNode, FanoutNode]> {
  const busPrefix = uniquePrefix('sse');
  const one = await startNode({ bus: REDIS_URL, busPrefix, nodeId: `${busPrefix}-a`, ...overrides });
  const two = await startNode({ bus: REDIS_URL, busPrefix, nodeId: `${busPrefix}-b`, ...overrides });
  started.push(one, two);
  await waitNodesReady([one, two]);
  return [one, two];
}

before(async () => {
  [a, b] = await pair({ rateLimit: 20, maxPayload: 4096 });
});
after(() => closeNodes(started));

const sse = (node: FanoutNode, query = ''): string => httpUrl(node, `/ws/v1/sse${query}`);
const postUrl = (node: FanoutNode, session: string): string => httpUrl(node, `/ws/v1/sse/${session}`);

test('a session on one node takes POSTs on the other: answers come down the stream, and it chats with a WebSocket client', async () => {
  const stream = await SseStream.open(sse(a));
  const clients: TestClient[] = [];
  try {
    assert.equal(stream.status, 200);
    assert.match(stream.response.headers.get('content-type') ?? '', /^text\/event-stream/);
    const connected = await stream.frame((f) => f.type === 'connected');
    assert.equal(connected.node, a.id);
    assert.equal(stream.events[0]!.id, '1', 'the id is the position in the session');
    // Through node b: it does not hold the session and forwards the frames to a.
    const posted = await postFrames(postUrl(b, stream.session), [{ type: 'subscribe', channel: 'room', id: 1 }]);
    assert.equal(posted.status, 204);
    await stream.frame((f) => f.type === 'subscribed' && f.id === 1);

    const ws = await connectChannels(b);
    clients.push(ws);
    await request(ws, { type: 'subscribe', channel: 'room' });
    assert.equal((await postFrames(postUrl(b, stream.session), { type: 'publish', channel: 'room', data: 'from sse', id: 2 })).status, 204);
    await stream.frame((f) => f.type === 'ack' && f.id === 2);
    const [heard] = await waitMessages(ws, 'room', 1);
    assert.equal(heard!.data, 'from sse');
    await request(ws, { type: 'publish', channel: 'room', data: 'from ws' });
    const got = await stream.frame((f) => f.type === 'message' && f.data === 'from ws');
    assert.equal(got.channel, 'room');
    // The same decode() and answers: junk is an error frame down the stream, not a crash.
    assert.equal((await postFrames(postUrl(a, stream.session), 'not json')).status, 204);
    await stream.frame((f) => f.type === 'error' && f.code === 'bad_request');
    const ids = stream.events.map((e) => Number(e.id));
    assert.deepEqual(ids, ids.map((_, i) => i + 1), 'ids count the session\'s events');
    const metrics = await scrapeUntil(httpUrl(a, ''), (s) => s.value('fanout_connections', { transport: 'sse' }) === 1);
    assert.equal(metrics.value('fanout_connections', { transport: 'sse', endpoint: '/ws/v1' }), 1);
    // DELETE (the SDK's close), through the other node: the session ends at once, no wait for a resume.
    const deleted = await fetch(postUrl(b, stream.session), { method: 'DELETE' });
    assert.equal(deleted.status, 204);
    assert.equal((await stream.frame((f) => f.type === 'close')).code, 1000);
    await stream.untilEnded();
    assert.equal((await postFrames(postUrl(a, stream.session), { type: 'ping' })).status, 404);
  } finally {
    stream.close();
    closeAll(clients);
  }
});

test('?seq=: a POST sent again runs once, through either node; an older one runs nothing, one that skips ahead is 409 out_of_order', async () => {
  const stream = await SseStream.open(sse(a));
  try {
    await stream.frame((f) => f.type === 'connected');
    const seq = (node: FanoutNode, n: number | string, body: unknown) => postFrames(`${postUrl(node, stream.session)}?seq=${n}`, body);
    const publish = (id: number) => ({ type: 'publish', channel: 'seq', data: id, id });
    // The same batch twice: through b (relayed, with its seq), then straight to a, as the SDK resends after a lost answer.
    assert.equal((await seq(b, 1, [publish(1)])).status, 204);
    assert.equal((await seq(a, 1, [publish(1)])).status, 204, 'the resend is answered as the first was');
    // A batch the session refused is refused again, through either node, and never runs.
    const empty = await seq(a, 2, []);
    assert.equal(empty.status, 400);
    const again = await seq(b, 2, []);
    assert.equal(again.status, 400);
    assert.equal(again.text, empty.text, 'the remembered verdict');
    // A stale copy of batch 1 (a relay that arrived late): 204, nothing runs.
    assert.equal((await seq(b, 1, [publish(3)])).status, 204);
    // Skipping 4: the session missed a batch, nothing runs.
    const gap = await seq(b, 5, [publish(5)]);
    assert.equal(gap.status, 409);
    assert.equal((JSON.parse(gap.text) as { error: string }).error, 'out_of_order');
    assert.equal((await seq(a, 'x', [publish(6)])).status, 400, 'a seq that is not a number');
    assert.equal((await seq(a, 3, [publish(7)])).status, 204);
    await stream.frame((f) => f.type === 'ack' && f.id === 7);
    const acks = stream.frames.filter((f) => f.type === 'ack').map((f) => f.id);
    assert.deepEqual(acks, [1, 7], 'batch 1 ran once, the stale, skipping and malformed ones not at all');
  } finally {
    stream.close();
  }
});

test('limits: unknown and closed sessions 404, oversized bodies 413 before reading, a flood of POSTs 429 and rate_limited frames', async () => {
  // Unknown: malformed, and well-formed but never issued (on either node: b forwards it to a).
  assert.equal((await postFrames(postUrl(a, 'nope'), '{}')).status, 404);
  const plain = await SseStream.open(sse(a, '?channel=x'));
  await plain.frame((f) => f.type === 'subscribed');
  const forged = plain.session.replace(/\.[^.]+$/, '.' + 'A'.repeat(32));
  assert.equal((await postFrames(postUrl(b, forged), '{}')).status, 404);
  // Closed: a plain stream's session ends with its stream.
  plain.close();
  await until(async () => (await postFrames(postUrl(b, plain.session), '{"type":"ping"}')).status === 404, { timeoutMs: 5000, what: 'the closed session to answer 404' });

  const stream = await SseStream.open(sse(a));
  try {
    await stream.frame((f) => f.type === 'connected');
    // 413 from the headers alone: the body is never sent, the answer comes anyway.
    const answer = await rawPost(b.address.port, `/ws/v1/sse/${stream.session}`, 'content-length: 100000\r\n');
    assert.match(answer, /^HTTP\/1\.1 413/);
    assert.equal((await postFrames(postUrl(a, stream.session), 'x'.repeat(5000))).status, 413, 'a body over --max-payload');
    const many = Array.from({ length: 101 }, () => ({ type: 'ping' }));
    assert.equal((await postFrames(postUrl(a, stream.session), many)).status, 400, 'more than 100 frames in one POST');
    // --rate-limit 20: frames past it are answered rate_limited down the stream, POSTs past it 429.
    const publishes = Array.from({ length: 30 }, (_, i) => ({ type: 'history', channel: 'lim', id: 100 + i }));
    assert.equal((await postFrames(postUrl(a, stream.session), publishes)).status, 204);
    await stream.frame((f) => f.type === 'error' && f.code === 'rate_limited', 10_000, 'a rate_limited frame');
    // 100 at once: past 20 in one second however slowly a loaded machine sends them (unless it takes over 4 s).
    const statuses = await Promise.all(Array.from({ length: 100 }, () => postFrames(postUrl(b, stream.session), '{"type":"ping"}').then((r) => r.status)));
    assert.ok(statuses.includes(429), `some POSTs were refused: ${statuses.join(',')}`);
    assert.deepEqual(new Set(statuses), new Set([204, 429]), 'the others were taken');
  } finally {
    stream.close();
  }
});

test('resume: a stream that breaks picks up its session with Last-Event-ID and gets the frames it missed', async () => {
  const stream = await SseStream.open(sse(a));
  await stream.frame((f) => f.type === 'connected');
  await postFrames(postUrl(a, stream.session), { type: 'subscribe', channel: 'resume', id: 1 });
  await stream.frame((f) => f.type === 'subscribed');
  const last = stream.parser.lastEventId!;
  const session = stream.session;
  stream.close();
  await until(() => stream.ended, { what: 'the stream to end' });
  const ws = await connectChannels(b);
  try {
    for (let i = 0; i < 3; i++) await request(ws, { type: 'publish', channel: 'resume', data: i });
    const resumed = await SseStream.open(sse(a, `?session=${session}`), { 'last-event-id': last });
    try {
      const frames = async (): Promise<Frame[]> => {
        await resumed.frame((f) => f.type === 'message' && f.data === 2);
        return resumed.frames;
      };
      const got = await frames();
      assert.ok(!got.some((f) => f.type === 'connected'), 'the same session: no new connected frame');
      assert.deepEqual(got.filter((f) => f.type === 'message').map((f) => f.data), [0, 1, 2], 'every missed message, once, in order');
      assert.equal(Number(resumed.events[0]!.id), Number(last) + 1, 'ids go on from the last one seen');
      // A stale Last-Event-ID (or another node) is a new session.
      const fresh = await SseStream.open(sse(b, `?session=${session}`), { 'last-event-id': last });
      await fresh.frame((f) => f.type === 'connected');
      assert.notEqual(fresh.session, session);
      fresh.close();
    } finally {
      resumed.close();
    }
  } finally {
    ws.close();
  }
});

test('plain EventSource mode: events named after their type, Last-Event-ID recovers every channel on another node', async () => {
  const stream = await SseStream.open(sse(a, '?channel=p1&channel=p2'));
  const ws = await connectChannels(b);
  try {
    await until(() => stream.events.filter((e) => e.event === 'subscribed').length === 2, { what: 'two subscribed events' });
    await request(ws, { type: 'publish', channel: 'p1', data: 'one' });
    await request(ws, { type: 'publish', channel: 'p2', data: 'two' });
    await until(() => stream.events.filter((e) => e.event === 'message').length === 2, { what: 'two message events' });
    const lastId = stream.parser.lastEventId!;
    stream.close();
    await request(ws, { type: 'publish', channel: 'p1', data: 'missed 1' });
    await request(ws, { type: 'publish', channel: 'p2', data: 'missed 2' });
    const again = await SseStream.open(sse(b, '?channel=p1&channel=p2'), { 'last-event-id': lastId });
    try {
      await until(() => again.events.filter((e) => e.event === 'message').length === 2, { what: 'the missed messages' });
      const messages = again.events.filter((e) => e.event === 'message').map((e) => (JSON.parse(e.data) as Frame).data);
      assert.deepEqual(messages.sort(), ['missed 1', 'missed 2'], 'no gap, no duplicate');
      const subscribed = again.events.filter((e) => e.event === 'subscribed').map((e) => JSON.parse(e.data) as Frame);
      assert.deepEqual(subscribed.map((f) => f.recovered), [true, true]);
    } finally {
      again.close();
    }
    // A position from another epoch cannot be recovered: the event says recovered:false.
    const stale = Buffer.from(JSON.stringify({ p1: [5, 'not-the-epoch'] })).toString('base64url');
    const gone = await SseStream.open(sse(a, '?channel=p1'), { 'last-event-id': stale });
    const sub = await gone.frame((f) => f.type === 'subscribed');
    assert.equal(sub.recovered, false);
    gone.close();
  } finally {
    stream.close();
    ws.close();
  }
});

test('the gate: Origin, JWT in Authorization or ?token=, and drain ends streams with a close event 1001', async () => {
  const [one] = await pair({ jwtSecret: SECRET, allowedOrigins: 'https://app.example', drainDelay: 0, drainTimeout: 0 });
  const token = await sign({ channels: ['*'] });
  assert.equal((await SseStream.open(sse(one))).status, 401);
  assert.equal((await SseStream.open(sse(one, `?token=${token}`), { origin: 'https://evil.example' })).status, 403);
  const byQuery = await SseStream.open(sse(one, `?token=${token}`), { origin: 'https://app.example' });
  assert.equal(byQuery.status, 200);
  assert.equal(byQuery.response.headers.get('access-control-allow-origin'), 'https://app.example');
  const byHeader = await SseStream.open(sse(one), { authorization: `Bearer ${token}` });
  assert.equal(byHeader.status, 200);
  await byHeader.frame((f) => f.type === 'connected');
  await byQuery.frame((f) => f.type === 'connected');
  await one.drain();
  const closed = await byHeader.frame((f) => f.type === 'close');
  assert.equal(closed.code, 1001);
  await byHeader.untilEnded();
  await byQuery.untilEnded();
});

test('liveness: an SSE comment every --heartbeat, and a stream nobody reads is cut as a slow consumer', async () => {
  const [one, two] = await pair({ heartbeat: 1, maxBuffered: 65536, rateLimit: 0, rateLimitBytes: 0 });
  // Plain mode: its session ends with its stream (a session's would wait 30 s for a resume).
  const stream = await SseStream.open(sse(one, '?channel=hb'));
  await stream.frame((f) => f.type === 'connected');
  const before = stream.comments;
  await until(() => stream.comments >= before + 2, { timeoutMs: 10_000, what: 'heartbeat comments' });
  // Comments are invisible to EventSource and the SDK: an idle stream also gets the `ping` frame a socket would.
  await until(() => stream.events.some((e) => e.event === 'ping'), { timeoutMs: 10_000, what: 'a ping event' });
  stream.close();
  // A raw client that asks for a stream and never reads a byte of it.
  const socket = netConnect(one.address.port, '127.0.0.1');
  socket.write('GET /ws/v1/sse?channel=flood HTTP/1.1\r\nhost: x\r\naccept: text/event-stream\r\n\r\n');
  socket.pause();
  const ws = await connectChannels(two);
  try {
    await scrapeUntil(httpUrl(one, ''), (s) => s.value('fanout_connections', { transport: 'sse' }) === 1);
    // Enough to fill the kernel's buffers on both ends of a loopback connection (several MB); one
    // publish in flight at a time (--max-buffered bounds the publisher's requests in flight too).
    const big = 'x'.repeat(60_000);
    for (let i = 0; i < 600; i++) {
      await request(ws, { type: 'publish', channel: 'flood', data: big });
      if (i % 25 === 24 && (await scrapeUntil(httpUrl(one, ''), () => true)).value('fanout_connections', { transport: 'sse' }) === 0) break;
    }
    const m = await scrapeUntil(httpUrl(one, ''), (s) => s.value('fanout_connections', { transport: 'sse' }) === 0, 20_000);
    // Cut as a slow consumer (4508), or as a stream stuck for --heartbeat × 3 (1006; the heartbeat stream above ended with one already).
    const slow = m.value('fanout_connections_closed_total', { transport: 'sse', reason: 'slow_consumer' });
    const stuck = m.value('fanout_connections_closed_total', { transport: 'sse', reason: 'abnormal' }) - 1;
    assert.equal(slow + stuck, 1, `closed as slow (${slow}) or stuck (${stuck})`);
  } finally {
    ws.close();
    socket.destroy();
  }
});

test('the SDK in Node falls back to SSE behind a proxy that refuses WebSockets, and works the same there', async () => {
  const proxy = await startHaproxy([a.address.port, b.address.port], { balance: 'roundrobin', frontendRules: ['http-request deny deny_status 403 if { hdr(upgrade) -m found }'] });
  const client = new FanoutClient({ url: `ws://127.0.0.1:${proxy.port}/ws/v1`, backoff: { initial: 50, max: 200 } });
  const peer = await connectChannels(a);
  try {
    await request(peer, { type: 'subscribe', channel: 'sdk-room' });
    await client.connect();
    assert.equal(client.transport, 'sse', 'two refused openings, then SSE');
    const sub = client.subscribe('sdk-room');
    const got = collect(sub);
    await until(() => sub.state === 'subscribed', { what: 'the subscription' });
    const { offset } = await client.publish('sdk-room', { from: 'sdk' });
    assert.ok(offset >= 1);
    const [heard] = await waitMessages(peer, 'sdk-room', 1);
    assert.deepEqual(heard!.data, { from: 'sdk' });
    await request(peer, { type: 'publish', channel: 'sdk-room', data: 'to sdk' });
    await until(() => got.some((m) => m.data === 'to sdk'), { what: 'the message over SSE' });
    assert.deepEqual((await client.history('sdk-room')).messages.map((m) => m.data), [{ from: 'sdk' }, 'to sdk']);
    await connected(client);
  } finally {
    client.close();
    peer.close();
    await proxy.stop();
  }
});

test('the SDK over SSE: frames over --max-payload together go in smaller POSTs, one alone is answered too_large, and POSTs refused 429 go again after Retry-After', async () => {
  // The SDK's POSTs and what the node answered them, seen through fetch.
  const statuses: number[] = [];
  const realFetch = globalThis.fetch;
  globalThis.fetch = async (input, init) => {
    const res = await realFetch(input, init);
    if (init?.method === 'POST') statuses.push(res.status);
    return res;
  };
  const client = new FanoutClient({ url: `ws://127.0.0.1:${a.address.port}/ws/v1`, transports: ['sse'], requestTimeout: 5000 });
  const peer = await connectChannels(b);
  try {
    await request(peer, { type: 'subscribe', channel: 'sse-big' });
    await client.connect();
    assert.equal(client.transport, 'sse');
    // Ten publishes of 1.5 KB in one turn: one POST of 15 KB would be over --max-payload (4096).
    const acks = await Promise.all(Array.from({ length: 10 }, (_, i) => client.publish('sse-big', { i, pad: 'p'.repeat(1500) })));
    assert.deepEqual(acks.map((ack) => ack.offset), Array.from({ length: 10 }, (_, i) => i + 1), 'all ten published, in order');
    assert.ok(statuses.includes(413), `the whole batch was refused first: ${statuses.join(',')}`);
    const heard = await waitMessages(peer, 'sse-big', 10);
    assert.deepEqual(heard.map((m) => (m.data as { i: number }).i), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    // One frame over --max-payload by itself: its publish is answered at once, as the HTTP API answers a body over it.
    await assert.rejects(client.publish('sse-big', { pad: 'p'.repeat(5000) }), (err: { code?: string }) => err.code === 'too_large');
    // An oversized and a small one in one turn: the batch is split, the small one publishes, the big one is refused,
    // and the POSTs after it keep their numbering (no 409 and reconnect).
    const [big, small] = await Promise.allSettled([client.publish('sse-big', { pad: 'p'.repeat(5000) }), client.publish('sse-big', 'small')]);
    assert.equal(small.status, 'fulfilled');
    assert.equal(big.status === 'rejected' && (big.reason as { code?: string }).code, 'too_large');
    assert.equal((await client.publish('sse-big', 'after')).offset, 12);

    // --rate-limit 20: one publish after another, each waiting for its ack, passes 20 POSTs a second.
    await new Promise((resolve) => setTimeout(resolve, 1100));
    statuses.length = 0;
    const answers: string[] = [];
    for (let i = 0; i < 40; i++) answers.push(await client.publish('sse-flood', i).then(() => 'ack', (err: { code?: string }) => err.code ?? String(err)));
    assert.ok(statuses.includes(429), `some POSTs were refused 429: ${statuses.join(',')}`);
    // Every publish answered (none timed out): acked, or refused rate_limited by the frame limit, as over a WebSocket.
    assert.deepEqual([...new Set(answers)].filter((x) => x !== 'ack' && x !== 'rate_limited'), [], answers.join(','));
    assert.ok(answers.filter((x) => x === 'ack').length >= 20, answers.join(','));
    await connected(client);
  } finally {
    globalThis.fetch = realFetch;
    client.close();
    peer.close();
  }
});

/** A POST with the given headers and no body; resolves with what the node answered. */
function rawPost(port: number, path: string, headers: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = netConnect(port, '127.0.0.1');
    let answer = '';
    socket.on('data', (d) => (answer += d.toString()));
    socket.on('close', () => resolve(answer));
    socket.on('error', reject);
    socket.write(`POST ${path} HTTP/1.1\r\nhost: x\r\ncontent-type: text/plain\r\n${headers}\r\n`);
    setTimeout(() => socket.destroy(), 5000).unref();
  });
}
