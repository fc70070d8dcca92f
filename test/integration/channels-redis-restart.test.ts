import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CloseCode } from '../../src/errors.js';
import { startRedisServer } from '../../harness/brokers.js';
import { connectChannels, messagesOf, publish, subscribe, waitMessages } from '../helpers/channels.js';
import { closeNodes, startNode, waitNodesReady } from '../helpers/nodes.js';
import { closeAll, type TestClient } from '../helpers/ws-client.js';


test('Redis crashes and comes back empty: the epoch changes, live subscribers are told to resubscribe (4510) and recovery says recovered:false', async () => {
  // A private redis-server: this test kills it.
  const redis = await startRedisServer();
  const url = `redis://127.0.0.1:${redis.port}`;
  const nodes = [await startNode({ bus: url, nodeId: 'x1' }), await startNode({ bus: url, nodeId: 'x2' })];
  const clients: TestClient[] = [];
  try {
    await waitNodesReady(nodes, 15_000);
    const [p, s] = [await connectChannels(nodes[0]!), await connectChannels(nodes[1]!)];
    clients.push(p, s);
    const { epoch } = await subscribe(s, 'vol');
    for (let i = 1; i <= 3; i++) await publish(p, 'vol', i);
    await waitMessages(s, 'vol', 3);

    await redis.stop('SIGKILL');
    await redis.start();
    await waitNodesReady(nodes, 15_000);

    // The node's catch-up finds the history gone (new epoch): the subscriber must reload.
    assert.equal(await s.waitClose(15_000), CloseCode.RESUBSCRIBE);
    const again = await connectChannels(nodes[1]!);
    clients.push(again);
    const reply = await subscribe(again, 'vol', { offset: 3, epoch: epoch as string });
    assert.equal(reply.recovered, false);
    assert.notEqual(reply.epoch, epoch);
    assert.equal(reply.offset, 0);
    assert.equal(messagesOf(again, 'vol').length, 0);
    // Publishing works again, offsets restart in the new epoch.
    assert.equal(await publish(p, 'vol', 'fresh'), 1);
    const [m] = await waitMessages(again, 'vol', 1);
    assert.equal(m!.epoch, reply.epoch);
  } finally {
    closeAll(clients);
    await closeNodes(nodes);
    await redis.stop();
  }
});
