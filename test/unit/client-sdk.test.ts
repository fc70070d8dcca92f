// The SDK's connection state machine against a scripted protocol peer (test/helpers/scripted-peer.ts):
// connecting, tokens, close codes, refused upgrades, TLS failures, silence, bad frames and bad
// options. Subscriptions, recovery and requests: client-sdk-subscriptions.test.ts. The SDK against
// the real cluster: test/integration/client-cluster.test.ts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { WebSocketServer } from 'ws';
import { readFileSync } from 'node:fs';
import { createServer as createHttpsServer } from 'node:https';
import { FanoutClient, FanoutClientError, type ClientState, type DisconnectedInfo } from '../../client/index.js';
import { selfSignedCert, tempDir } from '../helpers/security.js';
import { sleep } from '../../harness/wait.js';
import { Peer, scriptedServer, FAST, connectedClient, reach } from '../helpers/scripted-peer.js';

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
