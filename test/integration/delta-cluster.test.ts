/**
 * Issue 27 part 5 end to end: a `--config` file whose `ticker:*` namespace has `delta: fossil`
 * runs two `fanout serve` processes on Redis behind HAProxy. Raw clients on each node that ask
 * `"delta":true` get the first message whole and then fossil deltas that rebuild what the back
 * end published; a client that did not ask gets whole messages; the SDK, asked with
 * `{ delta: true }`, hands the app whole data.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { FanoutClient } from '../../client/index.js';
import { forkFanoutServe, type ServerProcess } from '../../harness/fanout-process.js';
import { startHaproxy, type RunningHaproxy } from '../../harness/haproxy.js';
import { until } from '../../harness/wait.js';
import { REDIS_URL } from '../helpers/brokers.js';
import { appliedData, doc } from '../helpers/delta.js';
import { waitMessages } from '../helpers/channels.js';
import { uniquePrefix } from '../helpers/nodes.js';
import { collect } from '../helpers/sdk.js';
import { tempDir } from '../helpers/security.js';
import { closeAll, connect, type TestClient } from '../helpers/ws-client.js';

const API_KEY = 'cluster-delta-key';
type Frame = Record<string, unknown>;

const FILE = `
api-key: ${API_KEY}
namespaces:
  - pattern: ticker:*
    history-size: 0
    delta: fossil
    client-publish: false
`;

describe('delta: fossil from a YAML file, two nodes on Redis behind HAProxy', () => {
  const tmp = tempDir();
  let nodes: ServerProcess[] = [];
  let proxy: RunningHaproxy;
  const clients: TestClient[] = [];

  before(async () => {
    const file = tmp.file('fanout.yaml', FILE);
    const flags = ['--config', file, '--bus', REDIS_URL, '--bus-prefix', uniquePrefix('dlt'), '--drain-delay', '0'];
    nodes = await Promise.all([1, 2].map((i) => forkFanoutServe([...flags, '--node-id', `dlt${i}`])));
    proxy = await startHaproxy(nodes.map((n) => n.port));
  });

  after(async () => {
    closeAll(clients);
    await proxy?.stop();
    await Promise.all(nodes.map((n) => n.stop()));
    tmp.cleanup();
  });

  /** Clients through HAProxy until one is on each node, one per node. */
  async function onBothNodes(): Promise<TestClient[]> {
    const byNode = new Map<string, TestClient>();
    for (let i = 0; i < 8 && byNode.size < 2; i++) {
      const c = await connect(`ws://127.0.0.1:${proxy.port}/ws/v1`);
      clients.push(c);
      const hello = await c.json<{ node: string }>((f) => f['type'] === 'connected');
      if (!byNode.has(hello.node)) byNode.set(hello.node, c);
    }
    assert.equal(byNode.size, 2, 'HAProxy spreads clients over both nodes');
    return [...byNode.values()];
  }

  async function subscribe(c: TestClient, frame: Frame): Promise<Frame> {
    c.sendJson({ type: 'subscribe', id: 1, ...frame });
    return c.json((f) => f['id'] === 1);
  }

  async function apiPublish(channel: string, data: unknown): Promise<void> {
    const res = await fetch(`http://127.0.0.1:${proxy.port}/api/publish`, {
      method: 'POST',
      headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ channel, data }),
    });
    assert.equal(res.status, 200);
  }

  test('delta subscribers on both nodes rebuild every document from deltas; a plain subscriber gets them whole; the SDK sees whole data', async () => {
    const deltas = await onBothNodes();
    const [plain] = await onBothNodes();
    for (const c of deltas) assert.equal((await subscribe(c, { channel: 'ticker:doc', delta: true }))['delta'], true);
    assert.equal((await subscribe(plain!, { channel: 'ticker:doc' }))['delta'], undefined);
    const sdk = new FanoutClient({ url: `ws://127.0.0.1:${proxy.port}/ws/v1` });
    try {
      await sdk.connect();
      const sub = sdk.subscribe('ticker:doc', {}, { delta: true });
      const got = collect(sub);
      assert.equal((await sub.ready).channel, 'ticker:doc');
      const docs = [1, 2, 3, 4, 5, 6].map((i) => doc(i));
      for (const d of docs) await apiPublish('ticker:doc', d);
      for (const c of [...deltas, plain!]) await waitMessages(c, 'ticker:doc', docs.length, 10_000);
      for (const c of deltas) {
        const seen = appliedData(c, 'ticker:doc');
        assert.deepEqual(seen.map((m) => m.kind), ['whole', 'delta', 'delta', 'delta', 'delta', 'delta']);
        assert.deepEqual(seen.map((m) => m.data), docs);
      }
      assert.deepEqual(appliedData(plain!, 'ticker:doc').map((m) => m.kind), ['whole', 'whole', 'whole', 'whole', 'whole', 'whole']);
      await until(() => got.length === docs.length, { what: 'the SDK to deliver six documents' });
      assert.deepEqual(got.map((m) => m.data), docs);
      const res = await fetch(`http://127.0.0.1:${proxy.port}/api/channels/ticker:doc`, { headers: { authorization: `Bearer ${API_KEY}` } });
      assert.equal(((await res.json()) as { options: Frame }).options['delta'], 'fossil');
    } finally {
      sdk.close();
    }
  });
});
