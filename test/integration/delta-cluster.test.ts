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
import { until } from '../../harness/wait.js';
import { appliedData, doc } from '../helpers/delta.js';
import { waitMessages } from '../helpers/channels.js';
import { collect } from '../helpers/sdk.js';
import { ConfigCluster } from '../helpers/config-cluster.js';
import type { TestClient } from '../helpers/ws-client.js';

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
  let cluster: ConfigCluster;
  before(async () => void (cluster = await ConfigCluster.start('dlt', FILE, API_KEY)));
  after(() => cluster?.close());
  const onBothNodes = (): Promise<TestClient[]> => cluster.onBothNodes();

  async function subscribe(c: TestClient, frame: Frame): Promise<Frame> {
    c.sendJson({ type: 'subscribe', id: 1, ...frame });
    return c.json((f) => f['id'] === 1);
  }

  const apiPublish = async (channel: string, data: unknown): Promise<void> => void (await cluster.publish(channel, data));

  test('delta subscribers on both nodes rebuild every document from deltas; a plain subscriber gets them whole; the SDK sees whole data', async () => {
    const deltas = await onBothNodes();
    const [plain] = await onBothNodes();
    for (const c of deltas) assert.equal((await subscribe(c, { channel: 'ticker:doc', delta: true }))['delta'], true);
    assert.equal((await subscribe(plain!, { channel: 'ticker:doc' }))['delta'], undefined);
    const sdk = new FanoutClient({ url: cluster.url });
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
      const res = await cluster.api('/api/channels/ticker:doc');
      assert.equal(((await res.json()) as { options: Frame }).options['delta'], 'fossil');
    } finally {
      sdk.close();
    }
  });
});
