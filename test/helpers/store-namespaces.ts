/**
 * The store conformance suite's namespace case (test/helpers/store-conformance.ts runs
 * it against every store): two real nodes with namespaces of different history sizes keep and
 * serve each channel its own namespace's size, in history pages and in recovery. Stores are sized
 * for the largest (config/namespaces.ts storedHistorySize); each channel is served its own.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { connectChannels, publish, request } from './channels.js';
import { closeNodes, startNode, uniquePrefix, waitNodesReady } from './nodes.js';
import type { StoreHarness } from './store-harnesses.js';
import { channel } from './store-suite.js';
import { closeAll, type TestClient } from './ws-client.js';

export function defineNamespaceNodes(h: StoreHarness): void {
  test('namespaces: each channel keeps and serves its namespace\'s history size (else --history-size), in history and in recovery', async () => {
    const prefix = uniquePrefix('scs');
    const { config, broker } = h.node(prefix);
    const namespaced = {
      ...config,
      historySize: 5,
      namespaces: [
        { pattern: 'big-*', historySize: 8 },
        { pattern: 'none-*', historySize: 0 },
      ],
    };
    const nodes = [await startNode({ ...namespaced, nodeId: 'ss1' }, broker), await startNode({ ...namespaced, nodeId: 'ss2' }, broker)];
    const clients: TestClient[] = [];
    try {
      await waitNodesReady(nodes, 30_000);
      const [pub, sub] = [await connectChannels(nodes[0]!), await connectChannels(nodes[1]!)];
      clients.push(pub, sub);
      for (const [name, kept] of [[`big-${channel()}`, 8], [`top-${channel()}`, 5], [`none-${channel()}`, 0]] as const) {
        const start = await request(sub, { type: 'subscribe', channel: name }, 15_000);
        assert.equal(start.type, 'subscribed', JSON.stringify(start));
        const acks: number[] = [];
        for (let i = 0; i < 10; i++) acks.push(await publish(pub, name, i));
        const page = await request(sub, { type: 'history', channel: name, limit: 100 }, 15_000);
        assert.deepEqual(
          (page.messages as Array<{ data: number }>).map((m) => m.data),
          Array.from({ length: kept }, (_, i) => 10 - kept + i),
          `${name}: the last ${kept}`,
        );
        // Paging back ends at the channel's own last N, though the store keeps the largest size.
        if (kept > 0) {
          const back = await request(sub, { type: 'history', channel: name, limit: 2, before: acks[10 - kept + 2]! }, 15_000);
          assert.deepEqual([(back.messages as Array<{ data: number }>).map((m) => m.data), back.more], [[10 - kept, 10 - kept + 1], undefined], `${name}: the oldest page`);
          const before = await request(sub, { type: 'history', channel: name, limit: 5, before: acks[10 - kept]! }, 15_000);
          assert.deepEqual([before.messages, before.more], [[], undefined], `${name}: nothing older than the last ${kept}`);
        }
        // Recovery from just before the oldest kept message is covered; from one earlier it is not.
        const epoch = start.epoch as string;
        const at = (offset: number) => request(sub, { type: 'subscribe', channel: name, since: { offset, epoch } }, 15_000);
        await request(sub, { type: 'unsubscribe', channel: name }, 15_000);
        const covered = await at(acks[9 - kept]!);
        assert.equal(covered.recovered, true, `${name}: recovery from offset ${acks[9 - kept]}`);
        await request(sub, { type: 'unsubscribe', channel: name }, 15_000);
        const lost = await at(acks[9 - kept]! - 1);
        assert.equal(lost.recovered, false, `${name}: recovery from offset ${acks[9 - kept]! - 1}`);
        await request(sub, { type: 'unsubscribe', channel: name }, 15_000);
      }
    } finally {
      closeAll(clients);
      await closeNodes(nodes);
    }
  });
}
