import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Redis } from 'ioredis';
import { RedisBus } from '../../src/brokers/redis/bus.js';
import { BusUnavailableError } from '../../src/errors.js';
import { createConfig } from '../../src/config/load.js';
import { createNode } from '../../src/app.js';
import { freePort } from '../../harness/ports.js';
import { REDIS_URL } from '../helpers/brokers.js';
import { closeNodes, httpUrl, startNode, uniquePrefix, wsUrl, waitNodesReady } from '../helpers/nodes.js';
import { closeAll, connect } from '../helpers/ws-client.js';

let admin: Redis;
before(() => {
  admin = new Redis(REDIS_URL);
});
after(() => admin.quit());

test('two nodes over real Redis: each client gets each message once', async () => {
  const busPrefix = uniquePrefix();
  const nodes = [await startNode({ bus: REDIS_URL, busPrefix, nodeId: 'r1' }), await startNode({ bus: REDIS_URL, busPrefix, nodeId: 'r2' })];
  await waitNodesReady(nodes);
  const clients = [await connect(wsUrl(nodes[0]!)), await connect(wsUrl(nodes[1]!)), await connect(wsUrl(nodes[1]!))];
  try {
    clients[0]!.send('over redis');
    clients[2]!.send('back');
    for (const c of clients) {
      await c.until((m) => m.length >= 2);
      assert.deepEqual([...c.messages].sort(), ['Received: back', 'Received: over redis']);
    }
    clients[1]!.send('last');
    for (const c of clients) {
      await c.until((m) => m.includes('Received: last'));
      assert.equal(c.messages.length, 3);
    }
  } finally {
    closeAll(clients);
    await closeNodes(nodes);
  }
});

test('clusters with different --bus-prefix on one Redis do not see each other', async () => {
  const a = await startNode({ bus: REDIS_URL, busPrefix: uniquePrefix(), nodeId: 'pa' });
  const b = await startNode({ bus: REDIS_URL, busPrefix: uniquePrefix(), nodeId: 'pb' });
  const c = await startNode({ bus: REDIS_URL, busPrefix: 'x' + uniquePrefix(), nodeId: 'pc' });
  await waitNodesReady([a, b, c]);
  const [ca, cb] = [await connect(wsUrl(a)), await connect(wsUrl(b))];
  try {
    ca.send('only a');
    await ca.until((m) => m.includes('Received: only a'));
    cb.send('only b');
    await cb.until((m) => m.includes('Received: only b'));
    assert.deepEqual(ca.messages, ['Received: only a']);
    assert.deepEqual(cb.messages, ['Received: only b']);
  } finally {
    closeAll([ca, cb]);
    await closeNodes([a, b, c]);
  }
});

test('after Redis drops the subscriber connection, the node resubscribes and delivery resumes', async () => {
  const busPrefix = uniquePrefix();
  const nodes = [await startNode({ bus: REDIS_URL, busPrefix, nodeId: 'k1' }), await startNode({ bus: REDIS_URL, busPrefix, nodeId: 'k2' })];
  await waitNodesReady(nodes);
  const [a, b] = [await connect(wsUrl(nodes[0]!)), await connect(wsUrl(nodes[1]!))];
  try {
    a.send('before');
    await b.until((m) => m.includes('Received: before'));
    // Kill every pub/sub connection of this Redis: both nodes lose their subscriptions.
    await admin.client('KILL', 'TYPE', 'pubsub');
    // The node comes back by itself; keep sending until one gets across.
    const deadline = Date.now() + 10_000;
    let i = 0;
    while (!b.messages.some((m) => m.startsWith('Received: after'))) {
      assert.ok(Date.now() < deadline, 'delivery did not resume within 10 s');
      a.send(`after ${i++}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const after = b.messages.filter((m) => m.startsWith('Received: after'));
    assert.equal(new Set(after).size, after.length, 'no duplicates after resubscribing');
  } finally {
    closeAll([a, b]);
    await closeNodes(nodes);
  }
});

test('with Redis unreachable the node stays up, serves local clients, and /readyz says 503', async () => {
  const deadPort = await freePort();
  const node = await startNode({ bus: `redis://127.0.0.1:${deadPort}`, busPrefix: uniquePrefix(), nodeId: 'down1' });
  try {
    const ready = await fetch(httpUrl(node, '/readyz'));
    assert.equal(ready.status, 503);
    assert.equal(((await ready.json()) as { bus: string }).bus, 'disconnected');
    const health = await fetch(httpUrl(node, '/healthz'));
    assert.equal(health.status, 200);
    await health.arrayBuffer();
    const [a, b] = [await connect(wsUrl(node)), await connect(wsUrl(node))];
    a.send('local only');
    await b.until((m) => m.includes('Received: local only'));
    closeAll([a, b]);
  } finally {
    await node.close();
  }
});

test('a publish that cannot reach Redis rejects with BusUnavailableError', async () => {
  const bus = new RedisBus(`redis://127.0.0.1:${await freePort()}`);
  await assert.rejects(bus.connect(), BusUnavailableError);
  await assert.rejects(bus.publish('t', Buffer.from('x')), BusUnavailableError);
  await bus.close();
  await bus.close();
});

test('a node built with a Redis bus closes cleanly twice', async () => {
  const node = createNode({ config: createConfig({ port: 0, host: '127.0.0.1', bus: REDIS_URL, busPrefix: uniquePrefix() }) });
  await node.start();
  await node.close();
  await node.close();
  assert.equal(node.state, 'closed');
});

