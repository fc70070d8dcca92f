/**
 * Refresh without reconnecting (docs/auth.md), end to end through a real HAProxy in front of two
 * `fanout serve` processes, once on Redis and once on Kafka with no Redis:
 * - the SDK, with a token that lives 5 s and a subscription token that lives 5 s, stays connected
 *   for 30 s by refreshing both: one connection, no reconnect, every message once and in order;
 * - a subscription token that expires drops only its channel (raw ws clients), and a refresh
 *   with another user's token is `unauthorized`.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { FanoutClient, type DisconnectedInfo } from '../../client/index.js';
import { forkFanoutServe, type ServerProcess, waitReadyPort } from '../../harness/fanout-process.js';
import { type RunningHaproxy, startHaproxy } from '../../harness/haproxy.js';
import { until } from '../../harness/wait.js';
import { CHANNEL_PATH } from '../../src/protocol/frames.js';
import { REDIS_URL } from '../helpers/brokers.js';
import { frames, request, type Frame } from '../helpers/channels.js';
import { uniquePrefix } from '../helpers/nodes.js';
import { collect } from '../helpers/sdk.js';
import { SECRET, sign } from '../helpers/security.js';
import { closeAll, connect, type TestClient } from '../helpers/ws-client.js';

const KAFKA = '127.0.0.1:9092';
/** How long the refreshing client stays connected. */
const HOLD_MS = 30_000;
/** One publish per channel this often while it holds. */
const PUBLISH_EVERY_MS = 250;

interface Cluster {
  readonly nodes: ServerProcess[];
  readonly proxy: RunningHaproxy;
  readonly prefix: string;
}

async function startCluster(bus: (prefix: string) => string[]): Promise<Cluster> {
  const prefix = uniquePrefix('refresh');
  const nodes = await Promise.all(
    [1, 2].map((i) => forkFanoutServe([...bus(prefix), '--bus-prefix', prefix, '--node-id', `refresh${i}`, '--jwt-secret', SECRET, '--drain-delay', '0', '--drain-timeout', '0'])),
  );
  await Promise.all(nodes.map((n) => waitReadyPort(n.port, 30_000)));
  // Round robin: consecutive clients land on different nodes.
  const proxy = await startHaproxy(nodes.map((n) => n.port), { balance: 'roundrobin' });
  return { nodes, proxy, prefix };
}

async function stopCluster(cluster: Cluster | undefined): Promise<void> {
  if (!cluster) return;
  await cluster.proxy.stop();
  await Promise.all(cluster.nodes.map((n) => n.stop()));
}

/** The claims of a JWT, unverified (the test's own tokens). */
function claims(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>;
}

/**
 * One client refreshes a 5 s connection token and a 5 s subscription token for 30 s while another
 * publishes to both of its channels through the other node: it must see every message once, in
 * order, on one connection.
 */
async function holdsForThirtySeconds(cluster: Cluster): Promise<void> {
  const url = `ws://127.0.0.1:${cluster.proxy.port}${CHANNEL_PATH}`;
  const live = `live:${cluster.prefix}`;
  const vip = `vip:${cluster.prefix}`;
  let connectionTokens = 0;
  let subscriptionTokens = 0;
  const subscriber = new FanoutClient({
    url,
    token: async () => {
      connectionTokens++;
      return sign({ channels: ['live:*'] }, { sub: 'alice', exp: 5 });
    },
  });
  const publisher = new FanoutClient({ url, token: await sign({ channels: ['live:*', 'vip:*'] }, { sub: 'publisher', exp: 3600 }) });
  const disconnects: DisconnectedInfo[] = [];
  const connects: string[] = [];
  const errors: Error[] = [];
  subscriber.on('disconnected', (info) => disconnects.push(info));
  subscriber.on('connected', (info) => connects.push(info.node));
  subscriber.on('error', (err) => errors.push(err));
  try {
    const liveSub = subscriber.subscribe(live);
    const vipSub = subscriber.subscribe(vip, {
      token: async () => {
        subscriptionTokens++;
        return sign({ channel: vip }, { sub: 'alice', exp: 5 });
      },
    });
    const gotLive = collect(liveSub);
    const gotVip = collect(vipSub);
    await subscriber.connect();
    await Promise.all([liveSub.ready, vipSub.ready]);
    await publisher.connect();
    assert.notEqual(publisher.nodeId, subscriber.nodeId, 'HAProxy put the two clients on different nodes');

    const started = Date.now();
    let sent = 0;
    while (Date.now() - started < HOLD_MS) {
      await Promise.all([publisher.publish(live, { n: sent }), publisher.publish(vip, { n: sent })]);
      sent++;
      await new Promise((resolve) => setTimeout(resolve, PUBLISH_EVERY_MS));
    }
    await until(() => gotLive.length >= sent && gotVip.length >= sent, { timeoutMs: 10_000, what: `${sent} messages on both channels`, detail: () => `live ${gotLive.length}, vip ${gotVip.length}` });

    const expected = Array.from({ length: sent }, (_, n) => ({ n }));
    assert.deepEqual(gotLive.map((m) => m.data), expected, 'every message on the connection token\'s channel, once, in order');
    assert.deepEqual(gotVip.map((m) => m.data), expected, 'every message on the subscription token\'s channel, once, in order');
    assert.deepEqual(disconnects, [], 'no disconnect');
    assert.equal(connects.length, 1, 'one connection');
    assert.deepEqual(errors, []);
    assert.equal(subscriber.state, 'connected');
    // 30 s of 5 s tokens: at least five refreshes of each after the first token.
    assert.ok(connectionTokens >= 6, `connection tokens fetched: ${connectionTokens}`);
    assert.ok(subscriptionTokens >= 6, `subscription tokens fetched: ${subscriptionTokens}`);
  } finally {
    subscriber.close();
    publisher.close();
  }
}

/** Through HAProxy: a subscription token's channel is dropped at its exp, the others stay; another user's refresh is refused. */
async function subscriptionTokenExpires(cluster: Cluster): Promise<void> {
  const url = `ws://127.0.0.1:${cluster.proxy.port}${CHANNEL_PATH}`;
  const open = `live:open-${cluster.prefix}`;
  const vip = `vip:${cluster.prefix}`;
  const clients: TestClient[] = [];
  try {
    const alice = await connect(`${url}?token=${await sign({ channels: ['live:*'] }, { sub: 'alice', exp: 600 })}`);
    clients.push(alice);
    const publisher = await connect(`${url}?token=${await sign({ channels: ['live:*', 'vip:*'] }, { sub: 'publisher', exp: 600 })}`);
    clients.push(publisher);
    const [hello, other] = await Promise.all([alice, publisher].map((c) => c.json<Frame>((f) => f['type'] === 'connected')));
    assert.notEqual(hello!['node'], other!['node']);

    assert.equal((await request(alice, { type: 'subscribe', channel: open })).type, 'subscribed');
    const token = await sign({ channel: vip }, { sub: 'alice', exp: 2 });
    const subscribed = await request(alice, { type: 'subscribe', channel: vip, token });
    assert.equal(subscribed.type, 'subscribed');
    assert.equal(subscribed['expires'], claims(token)['exp']);
    const stranger = await request(alice, { type: 'refresh', token: await sign({ channels: ['live:*'] }, { sub: 'mallory', exp: 600 }) });
    assert.equal(stranger['code'], 'unauthorized');

    await request(publisher, { type: 'publish', channel: vip, data: 'before' });
    await alice.until(() => frames(alice).some((f) => f.type === 'message' && f.channel === vip), 5000, 'vip message');
    await alice.until(() => frames(alice).some((f) => f.type === 'unsubscribed'), 6000, 'vip dropped');
    assert.deepEqual(
      frames(alice).filter((f) => f.type === 'unsubscribed'),
      [{ type: 'unsubscribed', channel: vip, reason: 'expired' }],
    );
    await request(publisher, { type: 'publish', channel: open, data: 'after' });
    await alice.until(() => frames(alice).some((f) => f.type === 'message' && f.channel === open && f['data'] === 'after'), 5000, 'open still delivers');
    assert.equal(alice.closeCode, undefined);
  } finally {
    closeAll(clients);
  }
}

// The two clusters hold their 30 s side by side; within a cluster the cases go one by one (they
// count on HAProxy's round robin).
describe('refresh without reconnecting', { concurrency: true }, () => {
  describe('on Redis, two nodes behind HAProxy', { concurrency: 1 }, () => {
    let cluster: Cluster | undefined;
    before(async () => {
      cluster = await startCluster(() => ['--bus', REDIS_URL]);
    });
    after(async () => {
      await stopCluster(cluster);
      if (!cluster) return;
      const admin = new Redis(REDIS_URL);
      const keys = await admin.keys(`${cluster.prefix}:*`);
      if (keys.length) await admin.del(...keys);
      await admin.quit();
    });

    test('a client whose token lives 5 s stays connected for 30 s by refreshing: no reconnect, no missed message', () => holdsForThirtySeconds(cluster!));
    test('a subscription token expiring drops only its channel; a refresh with another sub is unauthorized', () => subscriptionTokenExpires(cluster!));
  });

  describe('on Kafka with no Redis, two nodes behind HAProxy', { concurrency: 1 }, () => {
    let cluster: Cluster | undefined;
    before(async () => {
      cluster = await startCluster((prefix) => ['--bus', `kafka://${KAFKA}/${prefix.replace(/[^A-Za-z0-9._-]/g, '-')}`]);
    });
    after(() => stopCluster(cluster));

    test('a client whose token lives 5 s stays connected for 30 s by refreshing: no reconnect, no missed message', () => holdsForThirtySeconds(cluster!));
    test('a subscription token expiring drops only its channel; a refresh with another sub is unauthorized', () => subscriptionTokenExpires(cluster!));
  });
});
