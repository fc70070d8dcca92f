// The SDK's token refresh (docs/auth.md) against a scripted protocol peer: the connection's token
// is refreshed in place ahead of `expires`, a refused refresh falls back to a reconnect with a
// fresh token, and a subscription token is sent, refreshed, renewed after an `expired` drop
// (with recovery), while a `forbidden` drop ends the subscription.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FanoutClient, FanoutClientError } from '../../client/index.js';
import { FAST, scriptedServer } from '../helpers/scripted-peer.js';

/** Unix seconds `ms` from now: what the server's `expires` fields carry. */
const inSeconds = (ms: number): number => (Date.now() + ms) / 1000;

test('the connection token is refreshed in place ahead of expires, again after each refreshed, with no reconnect', async (t) => {
  const server = await scriptedServer({ greet: false });
  t.after(() => server.close());
  let issued = 0;
  const client = new FanoutClient({ url: server.url, backoff: FAST, token: () => `token-${++issued}` });
  t.after(() => client.close());
  const disconnects: number[] = [];
  client.on('disconnected', (d) => disconnects.push(d.code));
  client.connect();
  const peer = await server.peer(0);
  assert.match(peer.req.url ?? '', /token=token-1/);
  peer.send({ type: 'connected', client: 'c1', node: 'n', expires: inSeconds(500) });
  const first = await peer.next('refresh');
  assert.equal(first['token'], 'token-2');
  assert.equal(first['channel'], undefined);
  peer.send({ type: 'refreshed', id: first.id, expires: inSeconds(500) });
  const second = await peer.next('refresh');
  assert.equal(second['token'], 'token-3');
  peer.send({ type: 'refreshed', id: second.id, expires: inSeconds(60_000) });
  assert.deepEqual(disconnects, []);
  assert.equal(server.peers.length, 1);
  assert.equal(client.state, 'connected');
});

test('a refused refresh falls back to a reconnect with a fresh token; a string token is never refreshed', async (t) => {
  const server = await scriptedServer({ greet: false });
  t.after(() => server.close());
  let issued = 0;
  const client = new FanoutClient({ url: server.url, backoff: FAST, token: async () => `token-${++issued}` });
  t.after(() => client.close());
  const errors: FanoutClientError[] = [];
  client.on('error', (err) => errors.push(err));
  client.connect();
  const peer = await server.peer(0);
  peer.send({ type: 'connected', client: 'c1', node: 'n', expires: inSeconds(300) });
  const refresh = await peer.next('refresh');
  peer.send({ type: 'error', id: refresh.id, code: 'unauthorized', message: 'token refused: its sub is not the connection\'s user' });
  const next = await server.peer(1);
  assert.match(next.req.url ?? '', /token=token-3/);
  assert.deepEqual(errors.map((e) => e.code), ['unauthorized']);

  const fixed = new FanoutClient({ url: server.url, backoff: FAST, token: 'static' });
  t.after(() => fixed.close());
  fixed.connect();
  const third = await server.peer(2);
  third.send({ type: 'connected', client: 'c3', node: 'n', expires: inSeconds(100) });
  // It cannot refresh: the server's 4001 at expiry ends it (terminal without a token function).
  await new Promise((resolve) => fixed.once('connected', resolve));
  third.ws.close(4001, 'token expired');
  await new Promise((resolve) => fixed.once('closed', resolve));
  assert.equal(third.log.filter((f) => f.type === 'refresh').length, 0);
});

test('a subscription token goes with the subscribe, is refreshed ahead of expires, and is renewed after an expired drop, with since', async (t) => {
  const server = await scriptedServer();
  t.after(() => server.close());
  const client = new FanoutClient({ url: server.url, backoff: FAST });
  t.after(() => client.close());
  let issued = 0;
  const got: unknown[] = [];
  const sub = client.subscribe('vip', { token: async () => `sub-${++issued}`, onMessage: (data) => got.push(data) });
  client.connect();
  const peer = await server.peer(0);
  const subscribe = await peer.next('subscribe');
  assert.equal(subscribe['token'], 'sub-1');
  peer.send({ type: 'subscribed', channel: 'vip', id: subscribe.id, offset: 0, epoch: 'E', expires: inSeconds(400) });
  await sub.ready;
  const refresh = await peer.next('refresh');
  assert.deepEqual([refresh['channel'], refresh['token']], ['vip', 'sub-2']);
  peer.send({ type: 'refreshed', id: refresh.id, channel: 'vip', expires: inSeconds(60_000) });
  peer.send({ type: 'message', channel: 'vip', offset: 1, epoch: 'E', data: 'one' });

  // The server dropped it anyway: a fresh token, and since = what the app saw.
  peer.send({ type: 'unsubscribed', channel: 'vip', reason: 'expired' });
  const again = await peer.next('subscribe');
  assert.equal(again['token'], 'sub-3');
  assert.deepEqual(again['since'], { offset: 1, epoch: 'E' });
  peer.send({ type: 'subscribed', channel: 'vip', id: again.id, offset: 1, epoch: 'E', recovered: true, expires: inSeconds(60_000) });
  await new Promise((resolve) => sub.once('subscribed', resolve));
  assert.equal(sub.state, 'subscribed');
  assert.deepEqual(got, ['one']);
});

test('an unasked unsubscribed with reason forbidden ends the subscription (failed, forbidden)', async (t) => {
  const server = await scriptedServer();
  t.after(() => server.close());
  const client = new FanoutClient({ url: server.url, backoff: FAST });
  t.after(() => client.close());
  const sub = client.subscribe('news');
  client.connect();
  const peer = await server.peer(0);
  const subscribe = await peer.next('subscribe');
  peer.send({ type: 'subscribed', channel: 'news', id: subscribe.id, offset: 0, epoch: 'E' });
  await sub.ready;
  const failed = new Promise<FanoutClientError>((resolve) => sub.once('error', resolve));
  peer.send({ type: 'unsubscribed', channel: 'news', reason: 'forbidden' });
  const err = await failed;
  assert.equal(err.code, 'forbidden');
  assert.equal(sub.state, 'failed');
  assert.equal(client.subscription('news'), undefined);
});
