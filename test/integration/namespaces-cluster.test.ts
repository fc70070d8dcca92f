/**
 * Issue 27's "done when" for namespaces: a YAML file with three namespaces runs two
 * `fanout serve --config` processes on Redis behind HAProxy, and real clients see each
 * namespace's options: a chat with history, presence and join/leave; a last-value ticker
 * (`cache: true`, `history-size: 0`, `delta: fossil`, no recovery) that anyone may read, whose
 * subscribers get its latest value at once and then the live stream with nothing lost or repeated
 * even while a publisher floods it; `notify:*` that only the back end writes.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { FanoutClient } from '../../client/index.js';
import { until } from '../../harness/wait.js';
import { ConfigCluster } from '../helpers/config-cluster.js';
import { appliedData } from '../helpers/delta.js';
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
    cache: true
    delta: fossil
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

  test('ticker:* keeps no history but its latest value, answers a since with recovered:false and latest; anyone may read it', async () => {
    const [a, b] = await onBothNodes();
    const first = await reply(a, { type: 'subscribe', channel: 'ticker:eur', id: 1 });
    assert.equal(first['latest'], undefined, 'nothing published yet');
    const offset = await apiPublish('ticker:eur', { price: 1.08 });
    const live = await a.json((f) => f['type'] === 'message' && f['channel'] === 'ticker:eur');
    assert.deepEqual(live['data'], { price: 1.08 });
    const history = await reply(b, { type: 'history', channel: 'ticker:eur', id: 2 });
    assert.deepEqual(history['messages'], []);
    const since = await reply(b, { type: 'subscribe', channel: 'ticker:eur', id: 3, since: { offset: first['offset'], epoch: first['epoch'] } });
    assert.equal(since['recovered'], false);
    assert.deepEqual(since['latest'], { offset, data: { price: 1.08 } }, 'the state to reload from');
    const res = await cluster.api('/api/channels/ticker:eur/latest');
    assert.deepEqual([res.status, await res.json()], [200, { offset, epoch: first['epoch'], data: { price: 1.08 } }]);
    assert.equal((await cluster.api('/api/channels/ticker:none/latest')).status, 404);
    // A token without the channel may not publish there: the namespace opens only subscribing to all.
    assert.equal((await reply(a, { type: 'publish', channel: 'ticker:eur', data: 1, id: 4 }))['code'], 'forbidden');
  });

  test('ticker:* under a publisher flooding it: each subscriber on either node (delta or not, the SDK too) gets latest, then every later message once, in order', async () => {
    const channel = 'ticker:flood';
    const [publisher] = await onBothNodes([channel]);
    const subscribers: TestClient[] = [];
    for (let i = 0; i < 5; i++) subscribers.push(...(await onBothNodes()));
    // Message i is published with id 100000 + i; its ack gives its offset.
    const acks = (): Map<number, number> => new Map(publisher.messages.filter((m) => m.includes('"type":"ack"')).map((m) => JSON.parse(m) as Frame).map((f) => [(f['id'] as number) - 100_000, f['offset'] as number]));
    publisher.sendJson({ type: 'publish', channel, data: 0, id: 100_000 });
    await publisher.until((all) => all.some((m) => m.includes('"type":"ack"')), 10_000, 'the first ack');
    const sdk = new FanoutClient({ url: cluster.url, token: await sign({ channels: [] }) });
    try {
      await sdk.connect();
      // 500 publishes pipelined from one node; a subscriber subscribes after every 50, half of them with deltas.
      const replies: Array<Promise<Frame>> = [];
      let sdkSub: ReturnType<FanoutClient['subscribe']> | undefined;
      let seen: number[] = [];
      const chunks = 10;
      for (let chunk = 0; chunk < chunks; chunk++) {
        for (let i = chunk * 50 + 1; i <= chunk * 50 + 50; i++) {
          publisher.sendJson({ type: 'publish', channel, data: i, id: 100_000 + i });
        }
        const c = subscribers[chunk]!;
        replies.push(reply(c, { type: 'subscribe', channel, id: 7, ...(chunk % 2 === 0 ? { delta: true } : {}) }));
        if (chunk === 5) seen = collectOffsets((sdkSub = sdk.subscribe(channel)));
        // The next chunk goes once this one is half acknowledged: publishes keep flowing while the subscribes are in flight.
        await publisher.until((all) => all.filter((m) => m.includes('"type":"ack"')).length > chunk * 50 + 25, 20_000, `chunk ${chunk} half acknowledged`);
      }
      await publisher.until((all) => all.filter((m) => m.includes('"type":"ack"')).length === chunks * 50 + 1, 20_000, 'every publish acknowledged');
      const dataAt = new Map([...acks()].map(([data, o]) => [o, data]));
      const last = Math.max(...dataAt.keys());
      const latests: number[] = [];
      for (const [k, replyPromise] of replies.entries()) {
        const subscribed = await replyPromise;
        assert.equal(subscribed['type'], 'subscribed', JSON.stringify(subscribed));
        const latest = subscribed['latest'] as { offset: number; data: number };
        assert.ok(latest, `subscriber ${k}: latest`);
        latests.push(latest.offset);
        assert.equal(latest.data, dataAt.get(latest.offset), `subscriber ${k}: latest is the message published at its offset`);
        const c = subscribers[k]!;
        await until(() => (appliedData(c, channel).at(-1)?.offset ?? latest.offset) === last, { timeoutMs: 20_000, what: `subscriber ${k} to reach offset ${last}` });
        const got = appliedData(c, channel);
        const offsets = [latest.offset, ...got.map((m) => m.offset)];
        assert.deepEqual(offsets, Array.from({ length: last - latest.offset + 1 }, (_, i) => latest.offset + i), `subscriber ${k}: latest and live are one sequence, nothing lost or repeated`);
        assert.deepEqual(got.map((m) => m.data), got.map((m) => dataAt.get(m.offset)), `subscriber ${k}: each message's data (deltas applied)`);
      }
      // The subscribes met the flood: most started mid-stream (their latest neither the first nor the last message).
      assert.ok(latests.filter((o) => o > 1 && o < last).length >= chunks / 2, `latest offsets ${latests.join(',')} of 1..${last}`);
      const info = await sdkSub!.ready;
      assert.ok(info.latest, 'the SDK\'s subscribed info carries latest');
      await until(() => seen.at(-1) === last, { timeoutMs: 20_000, what: 'the SDK to reach the last offset' });
      assert.deepEqual([info.latest.offset, ...seen], Array.from({ length: last - info.latest.offset + 1 }, (_, i) => info.latest!.offset + i), 'the SDK: latest and its messages are one sequence');
      assert.deepEqual(sdkSub!.latest, { offset: last, data: dataAt.get(last) }, 'subscription.latest follows the messages');
    } finally {
      sdk.close();
    }
  });

  test('notify:* refuses client publishes, even with a token that allows them; the HTTP API publishes to every node', async () => {
    const [a, b] = await onBothNodes(['notify:*']);
    for (const c of [a, b]) {
      const answer = await reply(c, { type: 'subscribe', channel: 'notify:u1', id: 1 });
      assert.equal(answer['type'], 'subscribed', JSON.stringify(answer));
    }
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

/** The offsets of the messages an SDK subscription hands the app, from now on. */
function collectOffsets(sub: ReturnType<FanoutClient['subscribe']>): number[] {
  const out: number[] = [];
  sub.on('message', (_data, { offset }) => out.push(offset));
  return out;
}
