/**
 * The store conformance suite's cases for per-namespace `history-ttl` and last-value channels
 * (`cache: true`), run against every store by test/helpers/store-conformance.ts: two
 * real nodes with namespaces. A channel's history goes at its own namespace's ttl while the
 * top-level channel keeps its own (memory and Redis expire it; the JetStream stream and the Kafka
 * log keep the longest ttl and the node serves the channel as empty, docs/brokers.md). A
 * last-value channel with `history-size: 0` keeps its latest message: `subscribed` carries it as
 * `latest`, the live messages continue right after it, and `GET /api/channels/C/latest` answers
 * it (404 when there is none).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { until } from '../../harness/wait.js';
import { connectChannels, messagesOf, publish, request, waitMessages, type Frame } from './channels.js';
import { closeNodes, httpUrl, startNode, uniquePrefix, waitNodesReady } from './nodes.js';
import type { StoreHarness } from './store-harnesses.js';
import { channel } from './store-suite.js';
import { closeAll, type TestClient } from './ws-client.js';

const API_KEY = 'store-latest-key';

export function defineLatestNodes(h: StoreHarness): void {
  test('namespaces: history-ttl per channel (a short one expires, the top-level one stays); cache: true keeps the latest message with history-size 0 and gives it to subscribers and GET …/latest', async () => {
    const prefix = uniquePrefix('scl');
    const { config, broker } = h.node(prefix);
    const namespaced = {
      ...config,
      apiKey: API_KEY,
      historySize: 10,
      historyTtl: 300,
      namespaces: [
        { pattern: 'short-*', historyTtl: 2, cache: true },
        { pattern: 'tick-*', historySize: 0, cache: true },
        { pattern: 'none-*', historySize: 0 },
      ],
    };
    const nodes = [await startNode({ ...namespaced, nodeId: 'sl1' }, broker), await startNode({ ...namespaced, nodeId: 'sl2' }, broker)];
    const clients: TestClient[] = [];
    const latest = async (name: string): Promise<{ status: number; body: Frame }> => {
      const res = await fetch(httpUrl(nodes[1]!, `/api/channels/${encodeURIComponent(name)}/latest`), { headers: { authorization: `Bearer ${API_KEY}` } });
      return { status: res.status, body: (await res.json()) as Frame };
    };
    try {
      await waitNodesReady(nodes, 30_000);
      const [pub, sub] = [await connectChannels(nodes[0]!), await connectChannels(nodes[1]!)];
      clients.push(pub, sub);

      // A last-value channel with history-size 0: nothing yet, then its latest message.
      const tick = `tick-${channel()}`;
      const empty = await request(sub, { type: 'subscribe', channel: tick }, 15_000);
      assert.deepEqual([empty.type, empty.latest], ['subscribed', undefined], 'no latest before the first message');
      assert.equal((await latest(tick)).status, 404);
      await request(sub, { type: 'unsubscribe', channel: tick }, 15_000);
      const acks: number[] = [];
      for (let i = 0; i < 5; i++) acks.push(await publish(pub, tick, { price: i }));
      const got = await latest(tick);
      assert.equal(got.status, 200);
      assert.deepEqual(got.body, { offset: acks[4], epoch: empty.epoch, data: { price: 4 } });
      const joined = await request(sub, { type: 'subscribe', channel: tick }, 15_000);
      assert.deepEqual(joined.latest, { offset: acks[4], data: { price: 4 } });
      assert.ok((joined.offset as number) >= acks[4]!, 'the reply\'s offset is the latest one or past it (Kafka shares offsets between channels)');
      const history = await request(sub, { type: 'history', channel: tick, limit: 10 }, 15_000);
      assert.deepEqual(history.messages, [], 'history-size 0 serves no history: the latest message is kept for latest only');
      const next = await publish(pub, tick, { price: 5 });
      const [live] = await waitMessages(sub, tick, 1, 15_000);
      assert.deepEqual([live!.offset, live!.data], [next, { price: 5 }], 'the live stream continues right after latest');

      // Publishes racing the subscribes: each subscriber's latest and live messages are the acknowledged ones from there, once each, in order.
      await raceSubscribes(pub, [sub, await connectChannels(nodes[0]!), await connectChannels(nodes[1]!), await connectChannels(nodes[0]!)], `tick-${channel()}`, clients);

      // A channel without cache and without history has no latest to give.
      const none = `none-${channel()}`;
      await publish(pub, none, 'x');
      assert.equal((await latest(none)).status, 404);
      assert.equal((await request(sub, { type: 'subscribe', channel: none }, 15_000)).latest, undefined);

      // history-ttl: the short namespace's channel goes after 2 s without messages, the top-level one stays.
      const short = `short-${channel()}`;
      const long = `top-${channel()}`;
      const shortAcks: number[] = [];
      for (let i = 0; i < 3; i++) {
        shortAcks.push(await publish(pub, short, i));
        await publish(pub, long, i);
      }
      const kept = await request(sub, { type: 'subscribe', channel: short }, 15_000);
      assert.deepEqual(kept.latest, { offset: shortAcks[2], data: 2 });
      await request(sub, { type: 'unsubscribe', channel: short }, 15_000);
      const page = async (name: string): Promise<unknown[]> => (await request(sub, { type: 'history', channel: name, limit: 10 }, 15_000)).messages as unknown[];
      await until(async () => (await page(short)).length === 0, { timeoutMs: 20_000, intervalMs: 200, what: `${short}'s history to expire after its namespace's 2 s` });
      assert.equal((await latest(short)).status, 404, 'the latest message goes with the history');
      const after = await request(sub, { type: 'subscribe', channel: short, since: { offset: shortAcks[0], epoch: kept.epoch } }, 15_000);
      assert.deepEqual([after.recovered, after.latest], [false, undefined], 'recovery across the ttl says recovered:false, and there is no latest');
      assert.deepEqual((await page(long)).map((m) => (m as Frame).data), [0, 1, 2], 'the top-level channel keeps its history (--history-ttl 300)');
    } finally {
      closeAll(clients);
      await closeNodes(nodes);
    }
  });
}

/**
 * `pub` pipelines 200 publishes to `name` (after one, so there is a latest); after every 50 one of
 * `subs` subscribes, while the publishes are still being acknowledged. Every subscriber's
 * `latest` is the message acknowledged at its offset, and its live messages are exactly the
 * acknowledged ones after it, in order (offsets compared by order only: log stores skip). On
 * JetStream the messages published between a subscribe's fence and its read may be more than the
 * stream keeps of the channel: `latest` is then the newest one read, the live stream goes on
 * after it all the same.
 */
async function raceSubscribes(pub: TestClient, subs: readonly TestClient[], name: string, opened: TestClient[]): Promise<void> {
  opened.push(...subs.slice(1));
  const BASE = 500_000;
  const acked = (): Frame[] => pub.messages.filter((m) => m.includes('"type":"ack"')).map((m) => JSON.parse(m) as Frame).filter((f) => (f.id as number) >= BASE);
  await publish(pub, name, -1);
  const replies: Array<Promise<Frame>> = [];
  for (let chunk = 0; chunk < subs.length; chunk++) {
    for (let i = chunk * 50; i < chunk * 50 + 50; i++) pub.sendJson({ type: 'publish', channel: name, data: i, id: BASE + i });
    const reply = request(subs[chunk]!, { type: 'subscribe', channel: name }, 15_000);
    // Awaited below, one by one: a failure before that (the finally closes the sockets) must not turn it into an unhandled rejection that hides the first error.
    reply.catch(() => {});
    replies.push(reply);
    await pub.until(() => acked().length > chunk * 50 + 25, 15_000, `chunk ${chunk} half acknowledged`);
  }
  await pub.until(() => acked().length === subs.length * 50, 15_000, 'every publish acknowledged');
  const dataAt = new Map(acked().map((f) => [f.offset as number, (f.id as number) - BASE]));
  const offsets = [...dataAt.keys()].sort((x, y) => x - y);
  // All at once: an assertion on one must not leave the others' replies unawaited.
  const answers = await Promise.all(replies);
  for (const [k, c] of subs.entries()) {
    const subscribed = answers[k]!;
    assert.equal(subscribed.type, 'subscribed', JSON.stringify(subscribed));
    const latest = subscribed.latest as { offset: number; data: number } | undefined;
    assert.ok(latest !== undefined, `subscriber ${k}: latest (${JSON.stringify(subscribed)})`);
    if (latest.data !== -1) assert.equal(latest.data, dataAt.get(latest.offset), `subscriber ${k}: latest is the message acknowledged at its offset`);
    const expected = offsets.filter((o) => o > latest.offset);
    await until(() => messagesOf(c, name).length >= expected.length, { timeoutMs: 20_000, what: `subscriber ${k}: ${expected.length} live messages` });
    const live = messagesOf(c, name);
    assert.deepEqual(live.map((m) => m.offset), expected, `subscriber ${k}: latest then live, nothing lost or repeated`);
    assert.deepEqual(live.map((m) => m.data), expected.map((o) => dataAt.get(o)));
  }
}
