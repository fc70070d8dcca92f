/**
 * A subscribe a real broker refuses while the link stays up (src/node/topics.ts): a redis-server of
 * this test's own whose ACL denies the node's user the echo topic's channel, then allows it. The
 * node stays connected throughout; /readyz answers 503 while the route is missing and 200 once the
 * retried subscribe goes through, and then messages flow on it.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { Redis } from 'ioredis';
import type { FanoutNode } from '../../src/app.js';
import { startRedisServer, type BrokerProcess } from '../../harness/brokers.js';
import { until } from '../../harness/wait.js';
import { scrape } from '../helpers/metrics.js';
import { closeNodes, httpUrl, startNode, uniquePrefix, wsUrl } from '../helpers/nodes.js';
import { closeAll, connect } from '../helpers/ws-client.js';

const nodes: FanoutNode[] = [];
let redis: BrokerProcess | undefined;
let admin: Redis | undefined;
after(async () => {
  await closeNodes(nodes);
  admin?.disconnect();
  await redis?.destroy();
});

test('Redis ACL refuses the echo channel, then allows it: retried while connected, /readyz 503 until then', async () => {
  redis = await startRedisServer();
  admin = new Redis(redis.url);
  const prefix = uniquePrefix('acl');
  // Every command and key, but of pub/sub channels only those under `<prefix>:other:`, the
  // cluster calls' own (`<prefix>:control`, `<prefix>:reply:<node>`) and the SSE relay's
  // (`<prefix>:sse:<node>`): the echo topic is refused.
  await admin.call('ACL', 'SETUSER', 'fanout', 'on', '>pw', '~*', '+@all', 'resetchannels', `&${prefix}:other:*`, `&${prefix}:control`, `&${prefix}:reply:*`, `&${prefix}:sse:*`);
  const bus = `redis://fanout:pw@127.0.0.1:${redis.port}`;
  const a = await startNode({ nodeId: 'a', bus, busPrefix: prefix });
  nodes.push(a);

  await until(async () => (await scrape(httpUrl(a, ''))).value('fanout_dropped_errors_total', { source: 'subscribe' }) >= 3, {
    timeoutMs: 15_000,
    intervalMs: 100,
    what: 'three refused subscribes of the echo topic',
  });
  const during = await scrape(httpUrl(a, ''));
  assert.equal(a.bus.connected, true, 'the link stays up');
  assert.equal(during.value('fanout_routes_missing'), 1);
  assert.equal((await fetch(httpUrl(a, '/readyz'))).status, 503);

  await admin.call('ACL', 'SETUSER', 'fanout', `&${prefix}:*`);
  await until(async () => (await fetch(httpUrl(a, '/readyz'))).status === 200, { timeoutMs: 15_000, intervalMs: 50, what: 'a to be ready once Redis allows the channel' });
  assert.equal((await scrape(httpUrl(a, ''))).value('fanout_routes_missing'), 0);

  const b = await startNode({ nodeId: 'b', bus, busPrefix: prefix });
  nodes.push(b);
  await until(async () => (await fetch(httpUrl(b, '/readyz'))).status === 200, { timeoutMs: 15_000, intervalMs: 50, what: 'b to be ready' });
  const [onA, onB] = await Promise.all([connect(wsUrl(a)), connect(wsUrl(b))]);
  try {
    onB.send('through the route Redis refused at first');
    assert.deepEqual(await onA.count(1), ['Received: through the route Redis refused at first']);
  } finally {
    closeAll([onA, onB]);
  }
});
