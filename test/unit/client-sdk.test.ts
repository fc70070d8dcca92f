// The SDK's state machine against a scripted protocol peer: a real `ws` server on port 0 whose
// replies each test writes, to produce what a healthy cluster cannot be made to do on cue
// (replays that overlap, refused recoveries, terminal close codes, silence). The SDK against the
// real cluster is test/integration/client-cluster.test.ts.
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { test, type TestContext } from 'node:test';
import { WebSocketServer, type WebSocket } from 'ws';
import { readFileSync } from 'node:fs';
import { createServer as createHttpsServer } from 'node:https';
import { FanoutClient, FanoutClientError, type ClientState, type DisconnectedInfo } from '../../client/index.js';
import { selfSignedCert, tempDir } from '../helpers/security.js';
import type { Json } from '../../src/protocol/frames.js';
import { Changes, sleep, until, untilEvent } from '../../harness/wait.js';

type Frame = Record<string, unknown> & { type: string };

/** One server-side connection: the frames it got, and a way to answer. */
class Peer {
  readonly frames: Frame[] = [];
  /** Every frame received, in arrival order (frames stays a to-do list for next()). */
  readonly log: Frame[] = [];
  private readonly changes = new Changes();
  constructor(readonly ws: WebSocket, readonly req: IncomingMessage) {
    ws.on('message', (data) => {
      const frame = JSON.parse(String(data)) as Frame;
      this.frames.push(frame);
      this.log.push(frame);
      this.changes.notify();
    });
    ws.on('error', () => {});
  }
  send(frame: Record<string, unknown>): void {
    this.ws.send(JSON.stringify(frame));
  }
  /** Waits for the next frame of `type` not yet taken, and takes it. */
  async next(type: string, timeoutMs = 5000): Promise<Frame> {
    const has = (): boolean => this.frames.some((f) => f.type === type);
    await until(has, { wake: this.changes, timeoutMs, what: `a ${type} frame`, detail: () => `got ${JSON.stringify(this.frames)}` });
    return this.frames.splice(this.frames.findIndex((f) => f.type === type), 1)[0]!;
  }
}

/** A scripted server: every connection becomes a Peer; `connected` is sent unless told not to. */
async function scriptedServer(options: { greet?: boolean; status?: number } = {}) {
  const peers: Peer[] = [];
  const changes = new Changes();
  const wss = new WebSocketServer({
    port: 0,
    host: '127.0.0.1',
    verifyClient: options.status ? (_info, cb) => cb(false, options.status) : undefined,
  });
  await untilEvent(wss, 'listening', { what: 'the scripted server to listen' });
  let n = 0;
  wss.on('connection', (ws, req) => {
    const peer = new Peer(ws, req);
    peers.push(peer);
    if (options.greet !== false) peer.send({ type: 'connected', client: `c${++n}`, node: 'node-a' });
    changes.notify();
  });
  const port = (wss.address() as { port: number }).port;
  return {
    url: `ws://127.0.0.1:${port}/ws/v1`,
    peers,
    /** Waits until connection number `index` (0-based) exists. */
    async peer(index: number, timeoutMs = 5000): Promise<Peer> {
      await until(() => peers[index] !== undefined, { wake: changes, timeoutMs, what: `connection #${index}` });
      return peers[index]!;
    },
    close: () =>
      new Promise<void>((r) => {
        for (const p of peers) p.ws.terminate();
        wss.close(() => r());
      }),
  };
}

const FAST = { initial: 20, max: 100, factor: 2, jitter: 0.5 };

/** A connected client on a scripted server, both closed after the test; `peer` is the server's side of the first connection. */
async function connectedClient(t: TestContext) {
  const server = await scriptedServer();
  t.after(() => server.close());
  const client = new FanoutClient({ url: server.url, backoff: FAST });
  t.after(() => client.close());
  await client.connect();
  return { server, client, peer: await server.peer(0) };
}


/** Resolves when `client` reaches `state`. */
function reach(client: FanoutClient, state: ClientState, timeoutMs = 5000): Promise<void> {
  if (client.state === state) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`state ${client.state}, expected ${state}`)), timeoutMs);
    const off = client.on('state', (s) => {
      if (s !== state) return;
      clearTimeout(t);
      off();
      resolve();
    });
  });
}

test('connects, reports its state and who serves it, sends the token in the query', async (t) => {
  const server = await scriptedServer();
  t.after(() => server.close());
  const client = new FanoutClient({ url: server.url, token: 'tok en', backoff: FAST });
  t.after(() => client.close());
  const states: string[] = [];
  client.on('state', (s) => states.push(s));
  assert.equal(client.state, 'closed');
  await client.connect();
  assert.deepEqual(states, ['connecting', 'connected']);
  assert.equal(client.clientId, 'c1');
  assert.equal(client.nodeId, 'node-a');
  const peer = await server.peer(0);
  assert.equal(new URL(peer.req.url!, 'http://x').searchParams.get('token'), 'tok en');
  assert.equal(new URL(peer.req.url!, 'http://x').pathname, '/ws/v1');
});

test('a token function is asked again before every connection attempt', async (t) => {
  const server = await scriptedServer();
  t.after(() => server.close());
  let n = 0;
  const client = new FanoutClient({ url: server.url, backoff: FAST, token: async () => `t${++n}` });
  t.after(() => client.close());
  await client.connect();
  (await server.peer(0)).ws.close(4001, 'token expired'); // terminal, unless a fresh token can be fetched
  const second = await server.peer(1);
  await reach(client, 'connected');
  const token = (p: Peer) => new URL(p.req.url!, 'http://x').searchParams.get('token');
  assert.deepEqual([token(server.peers[0]!), token(second)], ['t1', 't2']);
});

test('publish resolves with the acked offset and rejects with the server error code', async (t) => {
  const { client, peer } = await connectedClient(t);
  const ok = client.publish('room', { text: 'hi' });
  const bad = client.publish('secret', 1);
  const f1 = await peer.next('publish');
  const f2 = await peer.next('publish');
  assert.deepEqual(f1.data, { text: 'hi' });
  peer.send({ type: 'error', id: f2.id, code: 'forbidden', message: 'not allowed on secret' });
  peer.send({ type: 'ack', id: f1.id, offset: 7 });
  assert.deepEqual(await ok, { offset: 7 });
  await assert.rejects(bad, (err: FanoutClientError) => err.code === 'forbidden' && err.channel === 'secret' && /not allowed/.test(err.message));
});

test('after a drop it resubscribes with since, drops replayed duplicates, and delivers the rest once, in order', async (t) => {
  const server = await scriptedServer();
  t.after(() => server.close());
  const client = new FanoutClient({ url: server.url, backoff: FAST });
  t.after(() => client.close());
  const got: Array<[Json, number]> = [];
  const outcomes: string[] = [];
  const sub = client.subscribe('room', {
    onMessage: (data, { offset }) => got.push([data, offset]),
    onSubscribed: (info) => outcomes.push(info.outcome),
  });
  client.connect();
  const p1 = await server.peer(0);
  const s1 = await p1.next('subscribe');
  assert.equal(s1.since, undefined);
  p1.send({ type: 'subscribed', channel: 'room', id: s1.id, offset: 4, epoch: 'E' });
  p1.send({ type: 'message', channel: 'room', offset: 5, data: 'a' });
  p1.send({ type: 'message', channel: 'room', offset: 6, data: 'b' });
  p1.send({ type: 'message', channel: 'room', offset: 6, data: 'b' }); // a duplicate on the live stream
  await sub.ready;
  const states: ClientState[] = [];
  client.on('state', (s) => states.push(s));
  await new Promise<void>((r) => {
    const off = sub.on('message', (_d, { offset }) => offset === 6 && (off(), r()));
    if (got.length === 2) r();
  });
  p1.ws.terminate();

  const p2 = await server.peer(1);
  const s2 = await p2.next('subscribe');
  assert.deepEqual(s2.since, { offset: 6, epoch: 'E' }, 'resubscribes from the last offset the app saw');
  for (const [offset, data] of [[6, 'b'], [7, 'c'], [8, 'd']] as const) p2.send({ type: 'message', channel: 'room', offset, data });
  p2.send({ type: 'subscribed', channel: 'room', id: s2.id, offset: 8, epoch: 'E', recovered: true });
  p2.send({ type: 'message', channel: 'room', offset: 8, data: 'd' });
  p2.send({ type: 'message', channel: 'room', offset: 9, data: 'e' });
  await new Promise<void>((r) => {
    const check = () => got.some(([, o]) => o === 9) && r();
    sub.on('message', check);
    check();
  });
  assert.deepEqual(got, [['a', 5], ['b', 6], ['c', 7], ['d', 8], ['e', 9]]);
  assert.deepEqual(outcomes, ['fresh', 'recovered']);
  assert.deepEqual(states, ['reconnecting', 'connected']);
  assert.deepEqual(sub.position, { offset: 9, epoch: 'E' });
});

test('a resubscription the server could not recover raises "unrecovered"', async (t) => {
  const server = await scriptedServer();
  t.after(() => server.close());
  const client = new FanoutClient({ url: server.url, backoff: FAST });
  t.after(() => client.close());
  const sub = client.subscribe('room', {}, { since: { offset: 50, epoch: 'old' } });
  const unrecovered = new Promise<{ offset: number; epoch: string }>((r) => sub.on('unrecovered', r));
  client.connect();
  const p1 = await server.peer(0);
  const s1 = await p1.next('subscribe');
  assert.deepEqual(s1.since, { offset: 50, epoch: 'old' }, 'a stored position is sent on the first subscribe');
  p1.send({ type: 'subscribed', channel: 'room', id: s1.id, offset: 3, epoch: 'new', recovered: false });
  const info = await unrecovered;
  assert.equal(info.offset, 3);
  assert.equal(info.epoch, 'new');
  const got: number[] = [];
  sub.on('message', (_d, { offset }) => got.push(offset));
  p1.send({ type: 'message', channel: 'room', offset: 4, data: 'x' });
  await new Promise<void>((r) => sub.once('message', () => r()));
  assert.deepEqual(got, [4]);
});

test('a live message whose epoch changed raises "unrecovered" and is delivered, not dropped as a duplicate', async (t) => {
  const server = await scriptedServer();
  t.after(() => server.close());
  const client = new FanoutClient({ url: server.url, backoff: FAST });
  t.after(() => client.close());
  const sub = client.subscribe('room');
  const got: Array<[Json, number]> = [];
  sub.on('message', (data, { offset }) => got.push([data, offset]));
  const unrecovered: Array<{ offset: number; epoch: string }> = [];
  sub.on('unrecovered', (info) => unrecovered.push(info));
  client.connect();
  const p = await server.peer(0);
  const s = await p.next('subscribe');
  p.send({ type: 'subscribed', channel: 'room', id: s.id, offset: 7, epoch: 'old' });
  p.send({ type: 'message', channel: 'room', offset: 8, epoch: 'old', data: 'a' });
  p.send({ type: 'message', channel: 'room', offset: 1, epoch: 'new', data: 'b' });
  p.send({ type: 'message', channel: 'room', offset: 2, epoch: 'new', data: 'c' });
  await new Promise<void>((r) => {
    const check = () => got.length === 3 && r();
    sub.on('message', check);
  });
  assert.deepEqual(got, [['a', 8], ['b', 1], ['c', 2]]);
  assert.deepEqual(unrecovered, [{ channel: 'room', offset: 0, epoch: 'new', outcome: 'unrecovered', resubscribed: false }]);
  assert.deepEqual(sub.position, { offset: 2, epoch: 'new' });
});

test('requests made while disconnected wait and go out after the resubscriptions; a publish on the wire at a drop rejects as disconnected', async (t) => {
  const server = await scriptedServer();
  t.after(() => server.close());
  const client = new FanoutClient({ url: server.url, backoff: FAST });
  t.after(() => client.close());
  client.subscribe('room');
  const early = client.publish('room', 'queued before connect');
  client.connect();
  const p1 = await server.peer(0);
  const sub1 = await p1.next('subscribe');
  const pub1 = await p1.next('publish');
  assert.equal(pub1.data, 'queued before connect');
  assert.deepEqual(p1.log.map((f) => f.type), ['subscribe', 'publish'], 'resubscriptions go out before queued requests');
  assert.notEqual(pub1.id, sub1.id);
  p1.send({ type: 'ack', id: pub1.id, offset: 1 });
  assert.deepEqual(await early, { offset: 1 });

  const inflight = client.publish('room', 'in flight');
  await p1.next('publish');
  const dropped = new Promise<void>((r) => client.once('disconnected', () => r()));
  p1.ws.terminate();
  await assert.rejects(inflight, (err: FanoutClientError) => err.code === 'disconnected' && err.sent === true);
  await dropped;
  const queued = client.publish('room', 'while away');
  const p2 = await server.peer(1);
  await p2.next('subscribe');
  const pub2 = await p2.next('publish');
  assert.equal(pub2.data, 'while away', 'the in-flight publish is not resent (no duplicates)');
  p2.send({ type: 'ack', id: pub2.id, offset: 3 });
  assert.deepEqual(await queued, { offset: 3 });
});

test('history and presence in flight at a drop are resent after the reconnect', async (t) => {
  const { server, client, peer: p1 } = await connectedClient(t);
  const history = client.history('room', 5);
  const presence = client.presence('room');
  await p1.next('history');
  await p1.next('presence');
  p1.ws.terminate();
  const p2 = await server.peer(1);
  const h = await p2.next('history');
  const pr = await p2.next('presence');
  assert.equal(h.limit, 5);
  p2.send({ type: 'history', channel: 'room', id: h.id, epoch: 'E', messages: [{ offset: 1, data: 'x' }] });
  p2.send({ type: 'presence', channel: 'room', id: pr.id, clients: [{ client: 'c9', user: 'ann' }] });
  assert.deepEqual(await history, { epoch: 'E', messages: [{ offset: 1, data: 'x' }], more: false });
  assert.deepEqual(await presence, [{ client: 'c9', user: 'ann' }]);
});

test('history pages back: { before } goes on the wire, and more says whether older messages remain', async (t) => {
  const { client, peer } = await connectedClient(t);
  const page = client.history('room', { limit: 2, before: 10 });
  const h = await peer.next('history');
  assert.deepEqual([h.limit, h.before], [2, 10]);
  peer.send({ type: 'history', channel: 'room', id: h.id, epoch: 'E', offset: 12, messages: [{ offset: 8, data: 'a' }, { offset: 9, data: 'b' }], more: true });
  assert.deepEqual(await page, { epoch: 'E', messages: [{ offset: 8, data: 'a' }, { offset: 9, data: 'b' }], more: true });
});

test('a terminal close code stops the client: no reconnect, pending requests reject, "closed" fires', async (t) => {
  const { server, client, peer: p1 } = await connectedClient(t);
  const pub = client.publish('room', 1);
  await p1.next('publish');
  const closed = new Promise<{ code: number }>((r) => client.once('closed', r));
  const disconnected = new Promise<{ reconnect: boolean }>((r) => client.once('disconnected', r));
  p1.ws.close(4003, 'forbidden');
  assert.equal((await disconnected).reconnect, false);
  assert.equal((await closed).code, 4003);
  assert.equal(client.state, 'closed');
  await assert.rejects(pub, (err: FanoutClientError) => err.code === 'disconnected');
  await assert.rejects(client.publish('room', 2), (err: FanoutClientError) => err.code === 'closed');
  await sleep(300); // on purpose: several backoff periods pass, and a reconnect would show
  assert.equal(server.peers.length, 1, 'never reconnected');
});

test('a reconnect-class close code (4508 slow consumer, 1001 going away) reconnects', async (t) => {
  const server = await scriptedServer();
  t.after(() => server.close());
  const client = new FanoutClient({ url: server.url, backoff: FAST });
  t.after(() => client.close());
  await client.connect();
  (await server.peer(0)).ws.close(4508, 'slow consumer');
  (await server.peer(1)).ws.close(1001, 'draining');
  await server.peer(2);
  await reach(client, 'connected');
});

test('an upgrade refused with 401 is final under Node; 503 is retried', async (t) => {
  const refused = await scriptedServer({ status: 401 });
  t.after(() => refused.close());
  const client = new FanoutClient({ url: refused.url, backoff: FAST });
  t.after(() => client.close());
  const disconnected = new Promise<{ code: number; status?: number; reconnect: boolean }>((r) => client.once('disconnected', r));
  await assert.rejects(client.connect(), (err: FanoutClientError) => err.code === 'closed' && /401/.test(err.message));
  const info = await disconnected;
  assert.equal(info.code, 1006);
  assert.equal(info.status, 401);
  assert.equal(info.reconnect, false);
  assert.equal(client.state, 'closed');

  const busy = await scriptedServer({ status: 503 });
  t.after(() => busy.close());
  const c2 = new FanoutClient({ url: busy.url, backoff: FAST, maxRetries: 3 });
  t.after(() => c2.close());
  let drops = 0;
  c2.on('disconnected', () => drops++);
  await assert.rejects(c2.connect(), /client closed/);
  assert.equal(drops, 4, 'the first attempt and 3 retries');
});

test('state events carry why an attempt failed: a refused upgrade\'s status, each retry, and the final closed', async (t) => {
  const busy = await scriptedServer({ status: 503 });
  t.after(() => busy.close());
  const client = new FanoutClient({ url: busy.url, backoff: FAST, maxRetries: 2 });
  t.after(() => client.close());
  const events: Array<[ClientState, ClientState, DisconnectedInfo | undefined]> = [];
  client.on('state', (state, previous, why) => events.push([state, previous, why]));
  await assert.rejects(client.connect(), /client closed/);
  assert.deepEqual(
    events.map(([state, previous]) => [state, previous]),
    [['connecting', 'closed'], ['connecting', 'connecting'], ['connecting', 'connecting'], ['closed', 'connecting']],
    'the first attempt, one event per failed attempt (it stays connecting), then closed after maxRetries',
  );
  assert.equal(events[0]![2], undefined, 'nothing failed yet');
  for (const [, , why] of events.slice(1)) {
    assert.equal(why?.status, 503);
    assert.equal(why?.code, 1006);
    assert.match(why?.reason ?? '', /503/);
  }
  assert.deepEqual(events.map(([, , why]) => why?.reconnect), [undefined, true, true, false]);
});

test('a bad TLS certificate is the reason in the state events while the client stays connecting', async (t) => {
  const tmp = tempDir();
  t.after(() => tmp.cleanup());
  const { cert, key } = selfSignedCert(tmp.dir);
  const server = createHttpsServer({ cert: readFileSync(cert), key: readFileSync(key) });
  const wss = new WebSocketServer({ server });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => {
    wss.close();
    server.close(() => r());
    server.closeAllConnections();
  }));
  const client = new FanoutClient({ url: `wss://127.0.0.1:${(server.address() as { port: number }).port}/ws/v1`, backoff: FAST });
  t.after(() => client.close());
  const why = new Promise<DisconnectedInfo | undefined>((resolve) => client.on('state', (state, _previous, info) => info && resolve(info)));
  client.connect();
  const info = await why;
  assert.equal(client.state, 'connecting');
  assert.equal(info?.reconnect, true);
  assert.match(info?.reason ?? '', /self[- ]signed certificate/);
});

test('a server that never says "connected" times the attempt out and is retried', async (t) => {
  const server = await scriptedServer({ greet: false });
  t.after(() => server.close());
  const client = new FanoutClient({ url: server.url, backoff: FAST, connectTimeout: 200 });
  t.after(() => client.close());
  const reasons: string[] = [];
  client.on('disconnected', (d) => reasons.push(d.reason));
  client.connect();
  const p2 = await server.peer(1);
  assert.match(reasons[0]!, /no connected frame within 200 ms/);
  assert.equal(client.state, 'connecting', 'still connecting: it never connected');
  p2.send({ type: 'connected', client: 'late', node: 'n' });
  await reach(client, 'connected');
});

test('a subscribe refused as forbidden fails the subscription; unavailable is retried', async (t) => {
  const server = await scriptedServer();
  t.after(() => server.close());
  const client = new FanoutClient({ url: server.url, backoff: FAST });
  t.after(() => client.close());
  const denied = client.subscribe('secret');
  const flaky = client.subscribe('busy');
  const errors: string[] = [];
  flaky.on('error', (e) => errors.push(e.code));
  client.connect();
  const p = await server.peer(0);
  const s1 = await p.next('subscribe');
  const s2 = await p.next('subscribe');
  p.send({ type: 'error', id: s1.id, code: 'forbidden', message: 'no' });
  p.send({ type: 'error', id: s2.id, code: 'unavailable', message: 'history store down' });
  await assert.rejects(denied.ready, (err: FanoutClientError) => err.code === 'forbidden');
  assert.equal(denied.state, 'failed');
  assert.equal(client.subscription('secret'), undefined);
  const retry = await p.next('subscribe');
  assert.equal(retry.channel, 'busy');
  p.send({ type: 'subscribed', channel: 'busy', id: retry.id, offset: 0, epoch: 'E' });
  await flaky.ready;
  assert.deepEqual(errors, ['unavailable']);
});

test('requests time out with the reason, close() rejects what waits, unsubscribe stops delivery', async (t) => {
  const server = await scriptedServer();
  t.after(() => server.close());
  const client = new FanoutClient({ url: server.url, backoff: FAST, requestTimeout: 150 });
  t.after(() => client.close());
  await client.connect();
  const p = await server.peer(0);
  await assert.rejects(client.publish('room', 'x'), (err: FanoutClientError) => err.code === 'timeout' && err.sent && /may or may not/.test(err.message));

  const sub = client.subscribe('room');
  const s = await p.next('subscribe');
  p.send({ type: 'subscribed', channel: 'room', id: s.id, offset: 0, epoch: 'E' });
  await sub.ready;
  const got: number[] = [];
  sub.on('message', (_d, { offset }) => got.push(offset));
  const unsubscribed = sub.unsubscribe();
  const u = await p.next('unsubscribe');
  p.send({ type: 'message', channel: 'room', offset: 1, data: 'late' });
  p.send({ type: 'unsubscribed', channel: 'room', id: u.id });
  await unsubscribed;
  assert.equal(sub.state, 'unsubscribed');
  assert.deepEqual(got, [], 'nothing after unsubscribe()');

  const waiting = client.history('room');
  client.close();
  await assert.rejects(waiting, (err: FanoutClientError) => err.code === 'closed');
  assert.equal(client.state, 'closed');
});

test('bad frames from the server are reported as errors and do not break the connection', async (t) => {
  const server = await scriptedServer();
  t.after(() => server.close());
  const client = new FanoutClient({ url: server.url, backoff: FAST });
  t.after(() => client.close());
  const errors: string[] = [];
  client.on('error', (e) => errors.push(e.code));
  await client.connect();
  const p = await server.peer(0);
  p.ws.send('not json');
  p.ws.send('{"no":"type"}');
  p.send({ type: 'error', code: 'rate_limited', message: 'slow down' });
  p.send({ type: 'some-future-frame' });
  const pub = client.publish('room', 1);
  const f = await p.next('publish');
  p.send({ type: 'ack', id: f.id, offset: 1 });
  await pub;
  assert.deepEqual(errors, ['bad_frame', 'bad_frame', 'rate_limited']);
  assert.equal(client.state, 'connected');
});

test('bad options are refused before anything starts', () => {
  assert.throws(() => new FanoutClient({ url: '' }), /url/);
  assert.throws(() => new FanoutClient({ url: 'ftp://x' }), /url/);
  assert.throws(() => new FanoutClient({ url: 'ws://x', requestTimeout: -1 }), /requestTimeout/);
  assert.throws(() => new FanoutClient({ url: 'ws://x', backoff: { jitter: 3 } }), /backoff\.jitter/);
  const c = new FanoutClient({ url: 'ws://x' });
  assert.throws(() => c.subscribe(''), /channel/);
  c.subscribe('a');
  assert.throws(() => c.subscribe('a'), /already subscribed/);
});

test('a confirmation for a subscription the app already ended does not confirm its successor', async (t) => {
  const { client, peer: p } = await connectedClient(t);
  const first = client.subscribe('room');
  const s1 = await p.next('subscribe');
  void first.unsubscribe();
  const second = client.subscribe('room');
  const u = await p.next('unsubscribe');
  const s2 = await p.next('subscribe');
  const confirmations: number[] = [];
  second.on('subscribed', (info) => confirmations.push(info.offset));
  p.send({ type: 'subscribed', channel: 'room', id: s1.id, offset: 1, epoch: 'E' });
  p.send({ type: 'unsubscribed', channel: 'room', id: u.id });
  p.send({ type: 'subscribed', channel: 'room', id: s2.id, offset: 2, epoch: 'E' });
  assert.equal((await second.ready).offset, 2);
  assert.deepEqual(confirmations, [2]);
  assert.equal(first.state, 'unsubscribed');
  await assert.rejects(first.ready);
});

test('a subscribe retry pending at a drop is dropped with the connection: one subscribe per connection', async (t) => {
  const server = await scriptedServer();
  t.after(() => server.close());
  const client = new FanoutClient({ url: server.url, backoff: { initial: 300, max: 300, factor: 2, jitter: 0 } });
  t.after(() => client.close());
  const sub = client.subscribe('busy');
  client.connect();
  const p1 = await server.peer(0);
  const s1 = await p1.next('subscribe');
  p1.send({ type: 'error', id: s1.id, code: 'unavailable', message: 'try again' });
  await new Promise<void>((r) => sub.once('error', () => r()));
  p1.ws.terminate(); // before the 300 ms retry
  const p2 = await server.peer(1);
  const s2 = await p2.next('subscribe');
  p2.send({ type: 'subscribed', channel: 'busy', id: s2.id, offset: 0, epoch: 'E' });
  await sub.ready;
  await sleep(700); // on purpose: past the old retry's time, and it must not fire
  assert.deepEqual(p2.log.filter((f) => f.type === 'subscribe').length, 1);
  assert.equal(sub.state, 'subscribed');
});
