/**
 * The link that dies without a word (docs/client.md, "A silent link"): the SDK's connection goes
 * through a TCP proxy that black-holes it (harness/tcp-proxy.ts stall(): nothing forwarded, no FIN,
 * no RST) while the node keeps running. The node cuts its end after its ws-level heartbeat; the
 * SDK, which only listens, hears nothing at all, gives the connection up once the node's
 * announced `ping` bound passed, and after the link is restored reconnects to the same node and
 * recovers every message published meanwhile, once and in order.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FanoutClient, type DisconnectedInfo } from '../../client/index.js';
import { silenceLimitMs } from '../../client/liveness.js';
import { connectChannels, publish } from '../helpers/channels.js';
import { closeNodes, startNode } from '../helpers/nodes.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';
import { FAST } from '../helpers/scripted-peer.js';

test('a black-holed link: the SDK notices within 1.5 × ping + grace, reconnects and recovers every message once, in order', async (t) => {
  const heartbeat = 1;
  const node = await startNode({ heartbeat });
  t.after(() => closeNodes([node]));
  const proxy = await TcpProxy.start(node.address.port);
  t.after(() => proxy.close());
  const client = new FanoutClient({ url: `ws://127.0.0.1:${proxy.port}/ws/v1`, backoff: FAST, connectTimeout: 2000 });
  t.after(() => client.close());
  const publisher = await connectChannels(node);
  t.after(() => publisher.close());

  const got: number[] = [];
  const waiters: Array<() => void> = [];
  const sub = client.subscribe<{ n: number }>('room', {
    onMessage: (data) => {
      got.push(data.n);
      for (const w of waiters.splice(0)) w();
    },
  });
  const gotAll = (n: number): Promise<void> =>
    new Promise((resolve) => {
      const check = (): void => (got.length >= n ? resolve() : void waiters.push(check));
      check();
    });
  await client.connect();
  await sub.ready;
  for (let n = 1; n <= 5; n++) await publish(publisher, 'room', { n });
  await gotAll(5);

  const disconnected = new Promise<DisconnectedInfo>((resolve) => client.on('disconnected', resolve));
  proxy.stall();
  const stalledAt = Date.now();
  for (let n = 6; n <= 10; n++) await publish(publisher, 'room', { n });
  const limit = silenceLimitMs(heartbeat);
  const info = await Promise.race([
    disconnected,
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`the SDK still says ${client.state} ${limit + 5000} ms after the stall`)), limit + 5000)),
  ]);
  const noticedAfter = Date.now() - stalledAt;
  assert.match(info.reason, new RegExp(`no frame from the server for ${limit} ms`));
  assert.equal(info.reconnect, true);
  // The last frame came at most 1.5 intervals before the stall, so the limit passed at least limit - 1.5 s after it.
  assert.ok(noticedAfter >= limit - 1.5 * heartbeat * 1000, `not before the limit (${noticedAfter} ms after the stall)`);
  assert.deepEqual(got, [1, 2, 3, 4, 5], 'nothing got through the stall');

  for (let n = 11; n <= 15; n++) await publish(publisher, 'room', { n });
  proxy.restore();
  await gotAll(15);
  assert.deepEqual(got, Array.from({ length: 15 }, (_, i) => i + 1), 'every message once, in order');
  assert.equal(client.state, 'connected');
  assert.equal(client.nodeId, node.id);
});
