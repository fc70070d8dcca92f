/**
 * Issue 27's "done when" for namespaces: a YAML file with three namespaces runs two
 * `fanout serve --config` processes on Redis behind HAProxy, and real clients see each
 * namespace's options: a chat with history, presence and join/leave; a ticker with no history
 * and no recovery that anyone may read; `notify:*` that only the back end writes.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ConfigCluster } from '../helpers/config-cluster.js';
import { SECRET, sign } from '../helpers/security.js';
import type { TestClient } from '../helpers/ws-client.js';

const API_KEY = 'cluster-ns-key';
type Frame = Record<string, unknown>;

const FILE = `
api-key: ${API_KEY}
jwt-secret: ${SECRET}
history-size: 10
namespaces:
  - pattern: chat:*
    history-size: 100
    presence: true
    join-leave: true
    anonymous-subscribe: true
    anonymous-publish: true
  - pattern: ticker:*
    history-size: 0
    recovery: false
    anonymous-subscribe: true
  - pattern: notify:*
    client-publish: false
`;

describe('three namespaces from one YAML file, two nodes on Redis behind HAProxy', () => {
  let cluster: ConfigCluster;
  const ids = (c: TestClient): string | undefined => cluster.ids.get(c);
  before(async () => void (cluster = await ConfigCluster.start('nsc', FILE, API_KEY)));
  after(() => cluster?.close());

  /**
   * One client on each node. With a JWT configured every client has a token; one whose
   * `channels` claim is empty has only what the namespaces open to all (`anonymous-*`).
   */
  async function onBothNodes(channels: string[] = []): Promise<[TestClient, TestClient]> {
    return cluster.onBothNodes(await sign({ channels }));
  }

  async function reply(c: TestClient, frame: Frame): Promise<Frame> {
    c.sendJson(frame);
    return c.json((f) => f['id'] === frame['id'] && f['type'] !== 'message');
  }

  const apiPublish = (channel: string, data: unknown): Promise<number> => cluster.publish(channel, data);

  test('chat:* keeps history, lists presence and sends join frames across nodes', async () => {
    const [a, b] = await onBothNodes();
    assert.equal((await reply(a, { type: 'subscribe', channel: 'chat:lobby', id: 1 }))['type'], 'subscribed');
    assert.equal((await reply(b, { type: 'subscribe', channel: 'chat:lobby', id: 1 }))['type'], 'subscribed');
    // b joined on the other node: a hears it.
    await a.json((f) => f['type'] === 'join' && f['channel'] === 'chat:lobby' && f['client'] === ids(b));
    for (let i = 0; i < 12; i++) assert.equal((await reply(a, { type: 'publish', channel: 'chat:lobby', data: i, id: 10 + i }))['type'], 'ack');
    const history = await reply(b, { type: 'history', channel: 'chat:lobby', id: 30, limit: 50 });
    assert.equal((history['messages'] as unknown[]).length, 12, 'chat:* keeps 100, more than the top-level 10');
    const presence = await reply(b, { type: 'presence', channel: 'chat:lobby', id: 31 });
    assert.equal((presence['clients'] as unknown[]).length, 2);
  });

  test('ticker:* keeps no history and answers a since with recovered:false; anyone may read it', async () => {
    const [a, b] = await onBothNodes();
    const first = await reply(a, { type: 'subscribe', channel: 'ticker:eur', id: 1 });
    await apiPublish('ticker:eur', { price: 1.08 });
    const live = await a.json((f) => f['type'] === 'message' && f['channel'] === 'ticker:eur');
    assert.deepEqual(live['data'], { price: 1.08 });
    const history = await reply(b, { type: 'history', channel: 'ticker:eur', id: 2 });
    assert.deepEqual(history['messages'], []);
    const since = await reply(b, { type: 'subscribe', channel: 'ticker:eur', id: 3, since: { offset: first['offset'], epoch: first['epoch'] } });
    assert.equal(since['recovered'], false);
    // A token without the channel may not publish there: the namespace opens only subscribing to all.
    assert.equal((await reply(a, { type: 'publish', channel: 'ticker:eur', data: 1, id: 4 }))['code'], 'forbidden');
  });

  test('notify:* refuses client publishes, even with a token that allows them; the HTTP API publishes to every node', async () => {
    const [a, b] = await onBothNodes(['notify:*']);
    for (const c of [a, b]) assert.equal((await reply(c, { type: 'subscribe', channel: 'notify:u1', id: 1 }))['type'], 'subscribed');
    const refused = await reply(a, { type: 'publish', channel: 'notify:u1', data: 'x', id: 2 });
    assert.equal(refused['code'], 'forbidden');
    await apiPublish('notify:u1', { text: 'from the back end' });
    for (const c of [a, b]) assert.deepEqual((await c.json((f) => f['type'] === 'message' && f['channel'] === 'notify:u1'))['data'], { text: 'from the back end' });
    const res = await cluster.api('/api/channels/notify:u1');
    const body = (await res.json()) as { namespace: string; options: Frame };
    assert.equal(body.namespace, 'notify:*');
    assert.equal(body.options['client-publish'], false);
  });
});
