/**
 * The server API on users and revocation (docs/auth.md), end to end: two `fanout serve` nodes
 * behind HAProxy, clients and API calls through HAProxy, once on Redis and once on Kafka with no
 * Redis (the shared Kafka, a topic of this file's own). A user holds a connection on each node;
 * `disconnect` closes both (4004: the SDK stays down; 4005: it reconnects), `subscribe` and
 * `unsubscribe` act on both, `connections` lists both, a revoked `jti` is refused at the next
 * upgrade and closed on the node that held it, and the channels listing counts both nodes.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { FanoutClient } from '../../client/index.js';
import { forkFanoutServe, waitReadyPort, type ServerProcess } from '../../harness/fanout-process.js';
import { startHaproxy, type RunningHaproxy } from '../../harness/haproxy.js';
import { until } from '../../harness/wait.js';
import { REDIS_URL } from '../helpers/brokers.js';
import { frames, type Frame } from '../helpers/channels.js';
import { uniquePrefix } from '../helpers/nodes.js';
import { SECRET, sign } from '../helpers/security.js';
import { connected } from '../helpers/sdk.js';
import { closeAll, connect, refusedStatus, type TestClient } from '../helpers/ws-client.js';

const KAFKA = process.env.FANOUT_TEST_KAFKA ?? '127.0.0.1:9092';
const API_KEY = 'users-api-test-key';
const FAST = { initial: 50, max: 500, factor: 2, jitter: 0.5 };

interface Cluster {
  nodes: ServerProcess[];
  proxy: RunningHaproxy;
}

for (const [name, bus] of [
  ['Redis', () => REDIS_URL],
  ['Kafka, no Redis', () => `kafka://${KAFKA}/${uniquePrefix('users')}`],
] as const) {
  describe(`server API on users, two nodes behind HAProxy on ${name}`, { timeout: 90_000 }, () => defineSuite(bus()));
}

function defineSuite(busUrl: string): void {
  const cluster = {} as Cluster;
  const sockets: TestClient[] = [];
  const sdks: FanoutClient[] = [];

  before(async () => {
    const prefix = uniquePrefix('ua');
    const args = ['--bus', busUrl, '--bus-prefix', prefix, '--jwt-secret', SECRET, '--api-key', API_KEY, '--presence', 'room:*'];
    cluster.nodes = await Promise.all([1, 2].map((i) => forkFanoutServe([...args, '--node-id', `${prefix}-n${i}`])));
    // Ready first (bus and stores connected, revocations read), so HAProxy finds both up.
    await Promise.all(cluster.nodes.map((n) => waitReadyPort(n.port, 30_000)));
    cluster.proxy = await startHaproxy(cluster.nodes.map((n) => n.port));
    // Each node knows the other (its hello) before the calls are made.
    await until(async () => (await api('GET', '/api/users/nobody/connections')).body.nodes === 2, { timeoutMs: 20_000, intervalMs: 200, what: 'both nodes to answer calls' });
  });

  after(async () => {
    closeAll(sockets);
    for (const c of sdks) c.close();
    await cluster.proxy?.stop();
    await Promise.all((cluster.nodes ?? []).map((n) => n.stop()));
  });

  async function api(method: string, path: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
    const res = await fetch(`http://127.0.0.1:${cluster.proxy.port}${path}`, {
      method,
      headers: { authorization: `Bearer ${API_KEY}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  }

  const url = (token: string): string => `ws://127.0.0.1:${cluster.proxy.port}/ws/v1?token=${token}`;

  /** Raw sockets of `user` through HAProxy until it holds one on each node; returns one per node. */
  async function onBothNodes(user: string, claims: Record<string, unknown> = {}): Promise<TestClient[]> {
    const byNode = new Map<string, TestClient>();
    for (let i = 0; i < 12 && byNode.size < 2; i++) {
      const client = await connect(url(await sign({ channels: ['room:*'], ...claims }, { sub: user })));
      sockets.push(client);
      const hello = await client.json<Frame>((f) => f.type === 'connected');
      if (byNode.has(hello.node as string)) client.close();
      else byNode.set(hello.node as string, client);
    }
    assert.equal(byNode.size, 2, 'HAProxy spread the user over both nodes');
    return [...byNode.values()];
  }

  /** SDK clients of `user` through HAProxy until one is connected to each node. */
  async function sdksOnBothNodes(user: string): Promise<FanoutClient[]> {
    const byNode = new Map<string, FanoutClient>();
    for (let i = 0; i < 12 && byNode.size < 2; i++) {
      const token = await sign({ channels: ['room:*'] }, { sub: user });
      const client = new FanoutClient({ url: `ws://127.0.0.1:${cluster.proxy.port}/ws/v1`, token: () => token, backoff: FAST });
      sdks.push(client);
      void client.connect();
      await connected(client);
      if (byNode.has(client.nodeId!)) client.close();
      else byNode.set(client.nodeId!, client);
    }
    assert.equal(byNode.size, 2, 'HAProxy spread the user over both nodes');
    return [...byNode.values()];
  }

  test('connections lists the user\'s connections on both nodes, with their channels', async () => {
    const [a, b] = await onBothNodes('carol');
    a!.sendJson({ type: 'subscribe', channel: 'room:1', id: 1 });
    await a!.json((f) => f.type === 'subscribed');
    const { status, body } = await api('GET', '/api/users/carol/connections');
    assert.equal(status, 200);
    assert.equal(body.nodes, 2);
    const list = body.connections as Array<{ client: string; node: string; since: number; channels: string[] }>;
    const ids = [a, b].map((c) => frames(c!).find((f) => f.type === 'connected')!.client);
    assert.deepEqual(list.map((c) => c.client).sort(), [...ids].sort());
    assert.equal(new Set(list.map((c) => c.node)).size, 2);
    assert.deepEqual(list.find((c) => c.client === ids[0])!.channels, ['room:1']);
    assert.ok(list.every((c) => Math.abs(c.since - Date.now() / 1000) < 600), 'since is unix seconds');
    assert.deepEqual((await api('GET', '/api/users/nobody-at-all/connections')).body.connections, []);
  });

  test('subscribe and unsubscribe act on both nodes; the SDK surfaces the subscription it did not ask for', async () => {
    const [a, b] = await onBothNodes('dave');
    const [sdk] = await sdksOnBothNodes('dave');
    const handed: string[] = [];
    const got: unknown[] = [];
    sdk!.on('subscription', (sub) => {
      handed.push(`${sub.channel}:${String(sub.server)}`);
      sub.on('message', (data) => got.push(data));
    });
    const sub = await api('POST', '/api/users/dave/subscribe', { channel: 'room:news' });
    assert.equal(sub.status, 200);
    assert.equal(sub.body.touched, 4, 'two raw sockets and two SDK clients');
    assert.equal(sub.body.nodes, 2);
    for (const c of [a!, b!]) await c.json((f) => f.type === 'subscribed' && f.channel === 'room:news' && f.server === true);
    await until(() => handed.length === 1, { what: 'the SDK to hand over the server-made subscription' });
    assert.deepEqual(handed, ['room:news:true']);
    await until(() => sdk!.subscription('room:news')?.state === 'subscribed', { what: 'the SDK subscription to be live' });
    // The listing counts the subscribers of both nodes, once each has joined: a server-made
    // subscribe is answered when every connection was told, and each joins after its store read.
    let listed: unknown;
    await until(async () => {
      listed = (await api('GET', '/api/channels?prefix=room:news')).body.channels;
      return JSON.stringify(listed) === JSON.stringify([{ channel: 'room:news', subscribers: 4 }]);
    }, { timeoutMs: 10_000, intervalMs: 100, what: 'the listing to count the four subscribers' }).catch((err: Error) => assert.fail(`${err.message}; last listing ${JSON.stringify(listed)}`));
    const info = await api('GET', '/api/channels/room%3Anews');
    assert.equal(info.body.subscribers, 4);
    assert.equal(info.body.presence, 4);
    assert.equal(typeof info.body.epoch, 'string');

    await api('POST', '/api/publish', { channel: 'room:news', data: 'hello' });
    for (const c of [a!, b!]) await c.json((f) => f.type === 'message' && f.channel === 'room:news');
    await until(() => got.length === 1, { what: 'the SDK to deliver the message' });

    const ended: string[] = [];
    sdk!.subscription('room:news')!.on('unsubscribed', ({ reason }) => ended.push(reason));
    const unsub = await api('POST', '/api/users/dave/unsubscribe', { channel: 'room:news' });
    assert.equal(unsub.body.touched, 4);
    for (const c of [a!, b!]) await c.json((f) => f.type === 'unsubscribed' && f.channel === 'room:news' && f.reason === 'server');
    await until(() => ended.length === 1, { what: 'the SDK to end the subscription' });
    assert.deepEqual(ended, ['server']);
    assert.equal(sdk!.subscription('room:news'), undefined);
    assert.equal((await api('POST', '/api/users/dave/unsubscribe', { channel: 'room:news' })).body.touched, 0);
  });

  test('disconnect closes the user\'s connections on both nodes within 1 s; with 4004 the SDK stays down', async () => {
    const clients = await sdksOnBothNodes('erin');
    const closedAt: number[] = [];
    const codes: number[] = [];
    for (const c of clients) c.on('closed', ({ code }) => (codes.push(code), closedAt.push(Date.now())));
    const other = (await onBothNodes('frank'))[0]!;
    const asked = Date.now();
    const res = await api('POST', '/api/users/erin/disconnect', { reconnect: false });
    assert.equal(res.status, 200);
    assert.equal(res.body.touched, 2);
    await until(() => codes.length === 2, { timeoutMs: 5000, what: 'both SDK clients to close' });
    assert.deepEqual(codes, [4004, 4004]);
    assert.ok(Math.max(...closedAt) - asked < 1000, `closed ${Math.max(...closedAt) - asked} ms after the call`);
    assert.ok(clients.every((c) => c.state === 'closed'), 'the SDK does not reconnect after 4004');
    // Another user's connection is untouched.
    assert.equal(other.closeCode, undefined);
  });

  test('disconnect with "reconnect":true closes with 4005 and the SDK reconnects', async () => {
    const clients = await sdksOnBothNodes('gina');
    const seen: number[] = [];
    for (const c of clients) c.on('disconnected', ({ code, reconnect }) => reconnect && seen.push(code));
    const firstIds = clients.map((c) => c.clientId);
    const res = await api('POST', '/api/users/gina/disconnect', { reconnect: true });
    assert.equal(res.body.touched, 2);
    await until(() => seen.length === 2, { what: 'both clients to hear 4005' });
    assert.deepEqual(seen, [4005, 4005]);
    await until(() => clients.every((c) => c.state === 'connected' && !firstIds.includes(c.clientId)), { timeoutMs: 10_000, what: 'both clients to reconnect' });
  });

  test('a revoked jti is refused at the next upgrade and closed on the node that held it', async () => {
    const token = await sign({ channels: ['room:*'], jti: 'leaked-1' }, { sub: 'hank' });
    const holder = await connect(url(token));
    sockets.push(holder);
    await holder.json((f) => f.type === 'connected');
    const [keep] = await onBothNodes('hank', { jti: 'fine-1' });
    const res = await api('POST', '/api/tokens/revoke', { jti: 'leaked-1', until: Math.floor(Date.now() / 1000) + 600 });
    assert.equal(res.status, 200);
    assert.equal(res.body.touched, 1);
    assert.equal(await holder.waitClose(), 4001);
    // Whichever node HAProxy picks refuses it, once every node has heard the revoke (the answer
    // waits at most 2 s for them: docs/auth.md; on a loaded Kafka a node can answer later).
    const statuses: number[] = [];
    await until(async () => {
      statuses.length = 0;
      for (let i = 0; i < 4; i++) statuses.push(await refusedStatus(url(token)).catch(() => 101));
      return statuses.every((s) => s === 401);
    }, { timeoutMs: 10_000, intervalMs: 200, what: 'every node to refuse the revoked token' }).catch((err: Error) => assert.fail(`${err.message}: ${statuses.join(', ')} (nodes ${String(res.body.nodes)} of ${String(res.body.expected)})`));
    assert.equal(keep!.closeCode, undefined, 'another token of the same user stays');

    // Tokens of a user issued before a time. The token to be refused is signed before the revoke:
    // signed after it, on a loaded machine it could be issued in the second the revoke names.
    const early = url(await sign({ channels: ['room:*'] }, { sub: 'hank' }));
    const revoked = await api('POST', '/api/users/hank/revoke', { issued_before: Math.floor(Date.now() / 1000) + 1 });
    assert.equal(revoked.status, 200);
    assert.equal(await keep!.waitClose(), 4001);
    await until(async () => (await refusedStatus(early).catch(() => 101)) === 401 && (await refusedStatus(early).catch(() => 101)) === 401, {
      timeoutMs: 10_000,
      intervalMs: 200,
      what: 'both nodes to refuse a token of hank issued before the revoke',
    });
  });

  test('bad input gets a clear answer', async () => {
    assert.equal((await api('POST', '/api/users/x/subscribe', { channel: '' })).status, 400);
    assert.equal((await api('POST', '/api/users/x/disconnect', { reconnect: 'no' })).status, 400);
    assert.equal((await api('POST', `/api/users/${'u'.repeat(300)}/disconnect`, {})).status, 400);
    assert.equal((await api('POST', '/api/tokens/revoke', { jti: 'x', until: 1 })).status, 400);
    assert.equal((await api('GET', '/api/channels?limit=0')).status, 400);
    assert.equal((await api('GET', '/api/channels?cursor=!!')).status, 400);
    assert.equal((await api('GET', '/api/users/x/disconnect')).status, 405);
    const anonymous = await fetch(`http://127.0.0.1:${cluster.proxy.port}/api/users/x/connections`);
    assert.equal(anonymous.status, 401);
  });
}
