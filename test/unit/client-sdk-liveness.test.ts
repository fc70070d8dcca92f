// The SDK's watch on a silent link (client/liveness.ts) against a scripted protocol peer
// (test/helpers/scripted-peer.ts): a peer that announced `ping` and then goes silent without
// closing is given up after 1.5 × ping + max(5 s, ping / 2), and the SDK reconnects and resubscribes
// with `since`; `ping` frames (and any other frame) keep the connection. The node's side of the
// pings: test/integration/app-ping.test.ts; a black-holed link to a real cluster:
// test/integration/client-silent-link.test.ts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FanoutClient, type DisconnectedInfo } from '../../client/index.js';
import { silenceLimitMs } from '../../client/liveness.js';
import type { Json } from '../../src/protocol/frames.js';
import { scriptedServer, FAST } from '../helpers/scripted-peer.js';

test('silenceLimitMs: 1.5 intervals (the node\'s worst gap) plus max(5 s, interval / 2)', () => {
  assert.equal(silenceLimitMs(25), 50_000);
  assert.equal(silenceLimitMs(1), 6_500);
  assert.equal(silenceLimitMs(0.5), 5_750);
});

test('a node that announced ping and goes silent is given up after the limit: the SDK reconnects and resubscribes with since', async (t) => {
  const ping = 0.5;
  const server = await scriptedServer({ ping });
  t.after(() => server.close());
  const client = new FanoutClient({ url: server.url, backoff: FAST });
  t.after(() => client.close());
  const got: Array<[Json, number]> = [];
  const sub = client.subscribe('room', { onMessage: (data, { offset }) => got.push([data, offset]) });
  const drops: DisconnectedInfo[] = [];
  client.on('disconnected', (info) => drops.push(info));
  void client.connect();
  const p1 = await server.peer(0);
  const s1 = await p1.next('subscribe');
  p1.send({ type: 'subscribed', channel: 'room', id: s1.id, offset: 4, epoch: 'E' });
  p1.send({ type: 'message', channel: 'room', offset: 5, data: 'a' });
  await sub.ready;
  // Pings keep a connection that carries nothing else alive past the limit.
  const limit = silenceLimitMs(ping);
  const pinging = setInterval(() => p1.send({ type: 'ping' }), ping * 1000);
  await new Promise((r) => setTimeout(r, limit + 1000));
  clearInterval(pinging);
  assert.deepEqual(drops, [], 'no drop while pings arrive');
  assert.equal(client.state, 'connected');
  // Then the peer goes silent without closing: the TCP connection stays up, nothing arrives.
  const silentSince = Date.now() - ping * 1000; // the last ping went out at most one interval ago
  const info = await new Promise<DisconnectedInfo>((resolve) => {
    if (drops.length > 0) resolve(drops[0]!);
    else client.on('disconnected', resolve);
  });
  const waited = Date.now() - silentSince;
  assert.equal(info.code, 1006);
  assert.match(info.reason, /no frame from the server for 5750 ms/);
  assert.equal(info.reconnect, true);
  assert.ok(waited >= limit - ping * 1000, `gave up only after the limit (${waited} ms after the last ping at the latest, limit ${limit} ms)`);
  const p2 = await server.peer(1);
  const s2 = await p2.next('subscribe');
  assert.deepEqual(s2.since, { offset: 5, epoch: 'E' }, 'resubscribes from the last offset the app saw');
  p2.send({ type: 'message', channel: 'room', offset: 6, data: 'b' });
  p2.send({ type: 'subscribed', channel: 'room', id: s2.id, offset: 6, epoch: 'E', recovered: true });
  await new Promise<void>((resolve) => {
    if (got.length === 2) resolve();
    else sub.on('message', () => resolve());
  });
  assert.deepEqual(got, [['a', 5], ['b', 6]]);
  assert.equal(client.state, 'connected');
});
