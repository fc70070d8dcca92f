// The client SDK (Node, over `ws`) against a real cluster: two `fanout serve` processes sharing
// Redis, HAProxy in front. Acks, history and presence across nodes; recovery after a drop (every
// message once, in order); a node killed with SIGKILL and restarted; and the error paths, each
// as a user of the SDK sees them.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Redis } from 'ioredis';
import { FanoutClient, FanoutClientError, type ClientOptions, type SubscribedInfo } from '../../client/index.js';
import { forkFanoutServe, type ServerProcess, waitReadyPort } from '../../harness/fanout-process.js';
import { type RunningHaproxy, startHaproxy } from '../../harness/haproxy.js';
import { until } from '../../harness/wait.js';
import { REDIS_URL } from '../helpers/brokers.js';
import { uniquePrefix } from '../helpers/nodes.js';
import { collect, contiguous, gatedWebSocket } from '../helpers/sdk.js';
import { SECRET, sign } from '../helpers/security.js';

const FAST = { initial: 50, max: 500, factor: 2, jitter: 0.5 };

let busPrefix: string;
let nodeArgs: (i: number) => string[];
let nodes: ServerProcess[] = [];
let proxy: RunningHaproxy | undefined;
const clients: FanoutClient[] = [];

before(async () => {
  busPrefix = uniquePrefix('sdk');
  nodeArgs = (i) => ['--bus', REDIS_URL, '--bus-prefix', busPrefix, '--node-id', `sdk${i}`, '--presence', 'chat:*', '--drain-delay', '0', '--drain-timeout', '0'];
  nodes = await Promise.all([1, 2].map((i) => forkFanoutServe(nodeArgs(i))));
  await Promise.all(nodes.map((n) => waitReadyPort(n.port, 15_000)));
  // Round robin: the drain test needs clients on both nodes whatever earlier tests left connected.
  proxy = await startHaproxy(nodes.map((n) => n.port), { balance: 'roundrobin' });
});

after(async () => {
  for (const c of clients) c.close();
  await proxy?.stop();
  await Promise.all(nodes.map((n) => n.stop()));
  const admin = new Redis(REDIS_URL);
  const keys = await admin.keys(`${busPrefix}:*`);
  if (keys.length) await admin.del(...keys);
  await admin.quit();
});

/** A client the file closes at the end. */
function client(target: number | 'proxy', options: Partial<ClientOptions> = {}): FanoutClient {
  const port = target === 'proxy' ? proxy!.port : target;
  const c = new FanoutClient({ url: `ws://127.0.0.1:${port}/ws/v1`, backoff: FAST, ...options });
  clients.push(c);
  return c;
}

test('publish resolves with its offset once acked; subscribers on both nodes get each message once, in order', async () => {
  const a = client(nodes[0]!.port);
  const b = client(nodes[1]!.port);
  const subA = a.subscribe('acks');
  const subB = b.subscribe('acks');
  const gotA = collect(subA);
  const gotB = collect(subB);
  a.connect();
  b.connect();
  await Promise.all([subA.ready, subB.ready]);
  assert.equal(a.nodeId, 'sdk1');
  assert.equal(b.nodeId, 'sdk2');

  const acks = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? a : b).publish('acks', { n: i })));
  const offsets = acks.map((x) => x.offset).sort((x, y) => x - y);
  assert.deepEqual(offsets, Array.from({ length: 20 }, (_, i) => i + 1), 'offsets 1..20, one per publish');
  await until(() => gotA.length === 20 && gotB.length === 20, { timeoutMs: 15_000, what: '20 messages on both subscribers' });
  for (const got of [gotA, gotB]) {
    assert.ok(contiguous(got, 1, 20), `in order, once: ${got.map((m) => m.offset).join(',')}`);
    for (let i = 0; i < 20; i++) assert.equal(got.find((m) => (m.data as { n: number }).n === i)!.offset, acks[i]!.offset, 'delivered at its acked offset');
  }
  assert.deepEqual(subA.position, { offset: 20, epoch: (await a.history('acks', 1)).epoch });
});

test('history and presence: the same from every node, with join and leave events', async () => {
  const a = client(nodes[0]!.port);
  const b = client(nodes[1]!.port);
  a.connect();
  b.connect();
  const roomA = a.subscribe('chat:presence');
  const joins: string[] = [];
  const leaves: string[] = [];
  roomA.on('join', (m) => joins.push(m.client));
  roomA.on('leave', (m) => leaves.push(m.client));
  await roomA.ready;
  const roomB = b.subscribe('chat:presence');
  await roomB.ready;
  await until(() => joins.includes(b.clientId!), { timeoutMs: 15_000, what: 'the join of b on a' });
  const present = (await roomA.presence()).map((p) => p.client).sort();
  assert.deepEqual(present, [a.clientId!, b.clientId!].sort());
  assert.deepEqual(await b.presence('chat:presence').then((l) => l.map((p) => p.client).sort()), present, 'the same from the other node');
  for (let i = 1; i <= 7; i++) await roomB.publish(`m${i}`);
  const history = await roomA.history(3);
  assert.deepEqual(history.messages.map((m) => m.data), ['m5', 'm6', 'm7']);
  assert.deepEqual(history.messages.map((m) => m.offset), [5, 6, 7]);
  const bId = b.clientId!;
  await roomB.unsubscribe();
  await until(() => leaves.includes(bId), { timeoutMs: 15_000, what: 'the leave of b on a' });
});

test('recovery: what was published while a client was away arrives after it reconnects, once, in order', async () => {
  const gate = gatedWebSocket();
  // The gate cuts the WebSocket only (the node still answers over HTTP): pinned to it, or the client would move to SSE.
  const away = client('proxy', { WebSocket: gate.WebSocket, transports: ['websocket'] });
  const publisher = client(nodes[1]!.port);
  const sub = away.subscribe('recover');
  const got = collect(sub);
  const confirmations: SubscribedInfo[] = [];
  sub.on('subscribed', (info) => confirmations.push(info));
  away.connect();
  publisher.connect();
  await sub.ready;
  const states: string[] = [];
  // A failed retry emits its state again with the reason: count changes only.
  away.on('state', (s, previous) => s !== previous && states.push(s));
  for (let i = 1; i <= 3; i++) await publisher.publish('recover', `before ${i}`);
  await until(() => got.length === 3, { timeoutMs: 15_000, what: '3 messages' });

  gate.shut();
  await until(() => away.state === 'reconnecting', { timeoutMs: 15_000, what: 'the drop to be noticed' });
  for (let i = 1; i <= 10; i++) await publisher.publish('recover', `away ${i}`);
  const attemptsWhileAway = gate.attempts;
  await until(() => gate.attempts > attemptsWhileAway + 1, { timeoutMs: 15_000, what: 'retries while away' });
  gate.open();
  await until(() => confirmations.length === 2, { timeoutMs: 15_000, what: 'the resubscription' });
  assert.equal(confirmations[1]!.outcome, 'recovered');
  assert.equal(confirmations[1]!.resubscribed, true);
  await publisher.publish('recover', 'after');
  await until(() => got.length >= 14, { timeoutMs: 15_000, what: '14 messages' });
  assert.ok(contiguous(got, 1, 14), `each offset once, in order: ${got.map((m) => m.offset).join(',')}`);
  assert.deepEqual(got.map((m) => m.data), ['before 1', 'before 2', 'before 3', ...Array.from({ length: 10 }, (_, i) => `away ${i + 1}`), 'after']);
  assert.deepEqual(states.slice(0, 2), ['reconnecting', 'connected'], 'reconnecting while away (however many retries), then connected');
  assert.ok(!states.includes('closed'));
});

test('a gap the server no longer holds (history too short) raises "unrecovered"; the stream goes on from there', async () => {
  const node = await forkFanoutServe(['--bus', 'memory', '--node-id', 'short', '--history-size', '3', '--drain-delay', '0', '--drain-timeout', '0']);
  try {
    const gate = gatedWebSocket();
    const away = client(node.port, { WebSocket: gate.WebSocket, transports: ['websocket'] });
    const publisher = client(node.port);
    const sub = away.subscribe('short');
    const got = collect(sub);
    const unrecovered: SubscribedInfo[] = [];
    sub.on('unrecovered', (info) => unrecovered.push(info));
    away.connect();
    publisher.connect();
    await sub.ready;
    await publisher.publish('short', 1);
    await until(() => got.length === 1, { timeoutMs: 15_000, what: 'the first message' });
    gate.shut();
    await until(() => away.state === 'reconnecting', { timeoutMs: 15_000, what: 'the drop' });
    for (let i = 2; i <= 10; i++) await publisher.publish('short', i);
    gate.open();
    await until(() => unrecovered.length === 1, { timeoutMs: 15_000, what: 'the unrecovered event' });
    assert.equal(unrecovered[0]!.offset, 10, 'the stream resumes after the latest offset');
    await publisher.publish('short', 11);
    await until(() => got.length === 2, { timeoutMs: 15_000, what: 'the next live message' });
    assert.deepEqual(got.map((m) => m.data), [1, 11], 'nothing from the gap is delivered as if it were continuous');
  } finally {
    await node.stop();
  }
});

test('a node killed with SIGKILL: its clients reconnect through HAProxy to the other node and get every message once; a client of that node comes back when it restarts', async () => {
  const channel = 'chat:kill';
  const viaProxy = Array.from({ length: 6 }, () => client('proxy'));
  const direct = client(nodes[0]!.port);
  const publisher = client(nodes[1]!.port);
  const all = [...viaProxy, direct];
  const received = new Map<FanoutClient, ReturnType<typeof collect>>();
  const outcomes = new Map<FanoutClient, string[]>();
  for (const c of all) {
    const sub = c.subscribe(channel);
    received.set(c, collect(sub));
    const list: string[] = [];
    sub.on('subscribed', (info) => list.push(info.outcome));
    outcomes.set(c, list);
    c.connect();
  }
  publisher.connect();
  await Promise.all(all.map((c) => c.subscription(channel)!.ready));
  const onKilled = viaProxy.filter((c) => c.nodeId === 'sdk1');
  assert.ok(onKilled.length >= 1 && onKilled.length < viaProxy.length, 'round robin put clients on both nodes');

  let sent = 0;
  const publish = async (n: number) => {
    for (let i = 0; i < n; i++) await publisher.publish(channel, { seq: ++sent });
  };
  await publish(5);
  await until(() => all.every((c) => received.get(c)!.length === 5), { timeoutMs: 15_000, what: 'the first 5 everywhere' });

  const killedPort = nodes[0]!.port;
  await nodes[0]!.stop('SIGKILL');
  await publish(20); // while the killed node's clients are away
  await until(() => viaProxy.every((c) => c.state === 'connected' && c.nodeId === 'sdk2'), { timeoutMs: 30_000, what: 'every HAProxy client on sdk2' });
  await publish(5);
  await until(() => viaProxy.every((c) => received.get(c)!.length >= 30), { timeoutMs: 30_000, what: '30 messages on every HAProxy client' });
  for (const c of viaProxy) {
    const got = received.get(c)!;
    assert.ok(contiguous(got, 1, 30), `once, in order: ${got.map((m) => m.offset).join(',')}`);
    assert.deepEqual(got.map((m) => (m.data as { seq: number }).seq), Array.from({ length: 30 }, (_, i) => i + 1));
  }
  for (const c of onKilled) assert.deepEqual(outcomes.get(c), ['fresh', 'recovered'], 'resubscribed with recovery');
  assert.notEqual(direct.state, 'closed', 'a client of the dead node keeps trying');

  // The node comes back on its port: its own client reconnects and recovers the gap.
  nodes[0] = await forkFanoutServe([...nodeArgs(1), '--port', String(killedPort)]);
  await waitReadyPort(killedPort, 15_000);
  await until(() => direct.state === 'connected' && direct.nodeId === 'sdk1', { timeoutMs: 30_000, what: 'the direct client back on sdk1' });
  await publish(1);
  await until(() => all.every((c) => received.get(c)!.length >= 31), { timeoutMs: 30_000, what: '31 messages everywhere' });
  for (const c of all) assert.ok(contiguous(received.get(c)!, 1, 31), `client on ${c.nodeId}: ${received.get(c)!.map((m) => m.offset).join(',')}`);
  assert.deepEqual(outcomes.get(direct), ['fresh', 'recovered']);
});

test('error paths: forbidden, not found, bad channel names, oversized messages (1009, terminal), refused upgrades, unreachable servers', async () => {
  const node = await forkFanoutServe(['--bus', 'memory', '--node-id', 'strict', '--max-payload', '2048', '--anonymous-publish', 'open:*', '--drain-delay', '0', '--drain-timeout', '0']);
  try {
    const c = client(node.port);
    await c.connect();
    await assert.rejects(c.publish('closed:x', 1), (err: FanoutClientError) => err.code === 'forbidden' && err.channel === 'closed:x');
    assert.deepEqual(await c.publish('open:x', 1), { offset: 1 }, 'the connection still serves after a refusal');
    await assert.rejects(c.presence('open:x'), (err: FanoutClientError) => err.code === 'not_found', 'no presence on this channel');
    const bad = c.subscribe('has space');
    await assert.rejects(bad.ready, (err: FanoutClientError) => err.code === 'bad_request');
    assert.equal(bad.state, 'failed');

    const closed = new Promise<{ code: number }>((r) => c.once('closed', r));
    const tooBig = c.publish('open:x', 'x'.repeat(4000));
    await assert.rejects(tooBig, (err: FanoutClientError) => err.code === 'disconnected' || err.code === 'closed');
    assert.equal((await closed).code, 1009, 'closed with "message too big", and not reconnected');
    assert.equal(c.state, 'closed');
    await assert.rejects(c.publish('open:x', 'small'), (err: FanoutClientError) => err.code === 'closed');

    const wrongPath = client(node.port, { url: `ws://127.0.0.1:${node.port}/ws/nothing-here` });
    const refused = new Promise<{ status?: number; reconnect: boolean }>((r) => wrongPath.once('disconnected', r));
    await assert.rejects(wrongPath.connect(), /404/);
    assert.deepEqual(await refused.then((d) => [d.status, d.reconnect]), [404, false]);
  } finally {
    await node.stop();
  }
  const nowhere = client(1, { maxRetries: 2, backoff: { initial: 10, max: 20 } });
  let drops = 0;
  nowhere.on('disconnected', () => drops++);
  await assert.rejects(nowhere.connect(), (err: FanoutClientError) => err.code === 'closed');
  assert.equal(drops, 3, 'the first attempt and two retries, then closed');
});

test('a drain (SIGTERM: close code 1001) sends the node\'s clients through HAProxy to the other node, nothing lost', async () => {
  const channel = 'drain';
  const viaProxy = Array.from({ length: 4 }, () => client('proxy'));
  const publisher = client(nodes[0]!.port);
  const received = new Map<FanoutClient, ReturnType<typeof collect>>();
  const codes = new Map<FanoutClient, number[]>();
  for (const c of viaProxy) {
    received.set(c, collect(c.subscribe(channel)));
    const list: number[] = [];
    c.on('disconnected', (d) => list.push(d.code));
    codes.set(c, list);
    c.connect();
  }
  publisher.connect();
  await Promise.all(viaProxy.map((c) => c.subscription(channel)!.ready));
  const drained = viaProxy.filter((c) => c.nodeId === 'sdk2');
  assert.ok(drained.length >= 1, 'round robin put a client on sdk2');
  await publisher.publish(channel, 1);
  const stopped = nodes[1]!.stop('SIGTERM');
  await until(() => drained.every((c) => codes.get(c)!.length > 0), { timeoutMs: 15_000, what: 'the drained clients to be closed' });
  await publisher.publish(channel, 2);
  await publisher.publish(channel, 3);
  assert.equal(await stopped, 0, 'the drained node exits 0');
  await until(() => viaProxy.every((c) => c.state === 'connected' && c.nodeId === 'sdk1'), { timeoutMs: 30_000, what: 'every client on sdk1' });
  await publisher.publish(channel, 4);
  await until(() => viaProxy.every((c) => received.get(c)!.length >= 4), { timeoutMs: 30_000, what: '4 messages everywhere' });
  for (const c of viaProxy) assert.deepEqual(received.get(c)!.map((m) => m.data), [1, 2, 3, 4]);
  for (const c of drained) assert.equal(codes.get(c)![0], 1001, 'closed with "going away", and reconnected');
});

test('with JWTs: a bad token stops the client (401); when the refresh of an expiring token is refused the client reconnects with a fresh one and the subscription recovers', async () => {
  const node = await forkFanoutServe(['--bus', 'memory', '--node-id', 'jwt', '--jwt-secret', SECRET, '--drain-delay', '0', '--drain-timeout', '0']);
  try {
    const forged = client(node.port, { token: await sign({ channels: ['*'] }, { key: new TextEncoder().encode('not the secret of this node') }) });
    const refused = new Promise<{ status?: number; reconnect: boolean }>((r) => forged.once('disconnected', r));
    await assert.rejects(forged.connect(), /401/);
    assert.deepEqual(await refused.then((d) => [d.status, d.reconnect]), [401, false]);

    const issued: number[] = [];
    const renewing = client(node.port, {
      // The first token expires within 2–3 s; the second, sent as its refresh, is another user's
      // (refused: the client falls back to a reconnect); the third lasts an hour.
      token: () => {
        issued.push(Date.now());
        return sign({ channels: ['room:*'] }, { sub: issued.length === 2 ? 'mallory' : 'ann', exp: issued.length === 1 ? 3 : 3600 });
      },
    });
    const publisher = client(node.port, { token: await sign({ channels: ['room:*'] }, { sub: 'bob' }) });
    const sub = renewing.subscribe('room:jwt');
    const got = collect(sub);
    const outcomes: string[] = [];
    sub.on('subscribed', (info) => outcomes.push(info.outcome));
    const codes: number[] = [];
    renewing.on('disconnected', (d) => codes.push(d.code));
    const errors: string[] = [];
    renewing.on('error', (err) => errors.push(err.code));
    renewing.connect();
    publisher.connect();
    await sub.ready;
    await publisher.publish('room:jwt', 'before expiry');
    await until(() => codes.length === 1, { timeoutMs: 15_000, what: 'the reconnect after the refused refresh' });
    assert.equal(codes[0], 4001);
    assert.deepEqual(errors, ['unauthorized']);
    await publisher.publish('room:jwt', 'while renewing');
    await until(() => outcomes.length === 2, { timeoutMs: 15_000, what: 'the resubscription with a renewed token' });
    await publisher.publish('room:jwt', 'after');
    await until(() => got.length === 3, { timeoutMs: 15_000, what: '3 messages' });
    assert.deepEqual(got.map((m) => m.data), ['before expiry', 'while renewing', 'after']);
    assert.deepEqual(outcomes, ['fresh', 'recovered']);
    assert.equal(issued.length, 3, 'the first token, the refused refresh, the new connection\'s');
    assert.equal(renewing.state, 'connected');
  } finally {
    await node.stop();
  }
});
