// The SDK's subscriptions and requests against a scripted protocol peer (test/helpers/scripted-peer.ts):
// publish acks, resubscription with since after a drop, "unrecovered", requests queued or resent
// across a drop, history pages, refused and retried subscribes, timeouts. The connection state
// machine: client-sdk.test.ts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FanoutClient, FanoutClientError, type ClientState } from '../../client/index.js';
import type { Json } from '../../src/protocol/frames.js';
import { sleep } from '../../harness/wait.js';
import { scriptedServer, FAST, connectedClient } from '../helpers/scripted-peer.js';

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
