/**
 * Channel recovery under faults, with real processes: two nodes behind a real HAProxy, channel
 * subscribers that reconnect and resubscribe with `since` like the SDK, and a back end publishing
 * through the HTTP API all the while. Whatever happens — a node drained (SIGTERM) or killed
 * (SIGKILL), Redis killed and restarted, a node's link to Redis cut — every acknowledged message
 * reaches every subscriber exactly once, in offset order, and a publish that cannot be stored
 * answers an error. (Subscribers of a node whose bus dropped are caught up in place from history;
 * 4510 when history cannot fill the gap is covered by channels-redis-restart.test.ts.)
 */
import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';
import { startRedisServer } from '../../harness/brokers.js';
import { exited } from '../../harness/child.js';
import { forkFanoutServe, type ServerProcess, waitReadyPort } from '../../harness/fanout-process.js';
import { type RunningHaproxy, startHaproxy } from '../../harness/haproxy.js';
import { Changes, sleep, until } from '../../harness/wait.js';
import { REDIS_URL } from '../helpers/brokers.js';
import { connectChannels, request } from '../helpers/channels.js';
import { uniquePrefix } from '../helpers/nodes.js';
import { RecoveringChannelClient } from '../helpers/recovering-channel-client.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';

const API_KEY = 'faults-key';
const CHANNEL = 'orders';
let cleanup: Array<() => unknown> = [];
afterEach(async () => {
  for (const fn of cleanup.reverse()) await fn();
  cleanup = [];
});

/** A back end publishing numbered messages through the HTTP API, one after the other, recording what was acknowledged. */
class ApiPublisher {
  readonly acked: string[] = [];
  readonly failed: Array<{ data: string; status: number }> = [];
  private running = true;
  private readonly loop: Promise<void>;
  private n = 0;
  private readonly changes = new Changes();

  constructor(private readonly port: () => number) {
    this.loop = this.run();
  }

  private async run(): Promise<void> {
    while (this.running) {
      const data = `m${++this.n}`;
      try {
        const res = await fetch(`http://127.0.0.1:${this.port()}/api/publish`, {
          method: 'POST',
          headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
          body: JSON.stringify({ channel: CHANNEL, data }),
        });
        await res.arrayBuffer();
        if (res.status === 200) this.acked.push(data);
        else this.failed.push({ data, status: res.status });
      } catch {
        this.failed.push({ data, status: 0 });
      }
      this.changes.notify();
      // The publishing pace: about 100 publishes a second.
      await sleep(10);
    }
  }

  /** Waits for `count` more acknowledged publishes. */
  moreAcked(count: number, timeoutMs = 10_000): Promise<void> {
    const target = this.acked.length + count;
    return until(() => this.acked.length >= target, { wake: this.changes, timeoutMs, what: `${count} more acknowledged publishes` });
  }

  /** Waits for `count` more failed publishes. */
  moreFailed(count: number, timeoutMs = 5000): Promise<void> {
    const target = this.failed.length + count;
    return until(() => this.failed.length >= target, { wake: this.changes, timeoutMs, what: `${count} more failed publishes (the HTTP API kept accepting)` });
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }
}

function untilReadyz(port: number, status: number, timeoutMs = 15_000): Promise<void> {
  return waitReadyPort(port, timeoutMs, status);
}

async function exitOf(node: ServerProcess): Promise<number | null> {
  return (await exited(node.child)).code;
}

async function nodes(bus: string | string[], extra: string[] = []): Promise<ServerProcess[]> {
  const prefix = uniquePrefix('fch');
  const buses = Array.isArray(bus) ? bus : [bus, bus];
  const started = await Promise.all(
    buses.map((url, i) => forkFanoutServe(['--bus', url, '--bus-prefix', prefix, '--node-id', `node-${'ab'[i]}`, '--api-key', API_KEY, '--heartbeat', '0', ...extra])),
  );
  cleanup.push(() => Promise.all(started.map((n) => n.stop('SIGKILL'))));
  for (const n of started) await untilReadyz(n.port, 200);
  return started;
}

async function haproxy(ns: ServerProcess[]): Promise<RunningHaproxy> {
  const proxy = await startHaproxy(ns.map((n) => n.port), { checkInterval: 300 });
  cleanup.push(() => proxy.stop());
  return proxy;
}

async function subscribers(count: number, url: string | (() => string)): Promise<RecoveringChannelClient[]> {
  const clients: RecoveringChannelClient[] = [];
  cleanup.push(() => clients.forEach((c) => c.stop()));
  for (let i = 0; i < count; i++) {
    const c = new RecoveringChannelClient(url, CHANNEL);
    clients.push(c);
    await c.start();
  }
  return clients;
}

/** Every acknowledged message reached every subscriber once, in offset order; nothing it got was invented. */
async function assertNoLoss(clients: RecoveringChannelClient[], publisher: ApiPublisher): Promise<void> {
  const last = publisher.acked.at(-1)!;
  await Promise.all(clients.map((c) => c.until(() => c.received.some((r) => r.data === last), 20_000, `the last acked message ${last}`)));
  const attempted = new Set([...publisher.acked, ...publisher.failed.map((f) => f.data)]);
  for (const c of clients) {
    const got = c.received.map((r) => r.data as string);
    const have = new Set(got);
    const missing = publisher.acked.filter((d) => !have.has(d));
    assert.deepEqual(missing, [], `client on ${c.nodes.join('→')} missed acknowledged messages`);
    assert.equal(have.size, got.length, 'no message delivered twice');
    assert.equal(c.duplicates, 0, 'the server sent no replays');
    for (const d of got) assert.ok(attempted.has(d), `${d} was published`);
    const offsets = c.received.map((r) => r.offset);
    for (let i = 1; i < offsets.length; i++) assert.ok(offsets[i]! > offsets[i - 1]!, 'in offset order');
  }
}

test('SIGTERM under load: drained subscribers reconnect through HAProxy, recover with since and lose nothing', async () => {
  const ns = await nodes(REDIS_URL, ['--drain-delay', '1', '--drain-timeout', '1']);
  const [a, b] = ns as [ServerProcess, ServerProcess];
  const proxy = await haproxy(ns);
  const clients = await subscribers(16, `ws://127.0.0.1:${proxy.port}/ws/v1`);
  const onA = clients.filter((c) => c.node === 'node-a');
  assert.ok(onA.length > 0 && onA.length < clients.length, 'subscribers on both nodes');
  const publisher = new ApiPublisher(() => b.port);
  await Promise.all(clients.map((c) => c.until(() => c.received.length >= 5)));

  const exited = exitOf(a);
  a.child.kill('SIGTERM');
  assert.equal(await exited, 0);
  await Promise.all(onA.map((c) => c.until(() => c.subscribedCount >= 2, 15_000, 'resubscribed')));
  // Publishing goes on a while after every subscriber is back.
  await publisher.moreAcked(20);
  await publisher.stop();

  assert.deepEqual(publisher.failed, [], 'the node that stayed up acknowledged every publish');
  await assertNoLoss(clients, publisher);
  for (const c of onA) {
    assert.deepEqual(c.closeCodes, [1001]);
    assert.deepEqual(c.recoveries, [true], 'recovered with since');
    assert.equal(c.node, 'node-b');
  }
  for (const c of clients.filter((x) => !onA.includes(x))) assert.deepEqual(c.closeCodes, []);
});

test('SIGKILL under load: the dead node\'s subscribers reconnect through HAProxy, recover with since and lose nothing', async () => {
  const ns = await nodes(REDIS_URL);
  const [a, b] = ns as [ServerProcess, ServerProcess];
  const proxy = await haproxy(ns);
  const clients = await subscribers(16, `ws://127.0.0.1:${proxy.port}/ws/v1`);
  const onA = clients.filter((c) => c.node === 'node-a');
  assert.ok(onA.length > 0);
  const publisher = new ApiPublisher(() => b.port);
  await Promise.all(clients.map((c) => c.until(() => c.received.length >= 5)));

  a.child.kill('SIGKILL');
  await exitOf(a);
  await Promise.all(onA.map((c) => c.until(() => c.subscribedCount >= 2, 15_000, 'resubscribed')));
  // Publishing goes on a while after every subscriber is back.
  await publisher.moreAcked(20);
  await publisher.stop();

  assert.deepEqual(publisher.failed, []);
  await assertNoLoss(clients, publisher);
  for (const c of onA) {
    assert.deepEqual(c.closeCodes, [1006]);
    assert.deepEqual(c.recoveries, [true]);
  }
});

test('Redis killed and restarted (with its append-only file): publishes answer errors meanwhile, then every node catches its subscribers up from history: nothing lost, nobody disconnected', async () => {
  const redis = await startRedisServer({ persistent: true });
  cleanup.push(() => redis.destroy());
  const ns = await nodes(redis.url, ['--drain-timeout', '1']);
  const [a, b] = ns as [ServerProcess, ServerProcess];
  const proxy = await haproxy(ns);
  const clients = await subscribers(12, `ws://127.0.0.1:${proxy.port}/ws/v1`);
  const publisher = new ApiPublisher(() => b.port);
  await Promise.all(clients.map((c) => c.until(() => c.received.length >= 5)));

  await redis.stop('SIGKILL');
  for (const n of ns) await untilReadyz(n.port, 503);
  // A publish that cannot be stored answers an error, over HTTP and over the channel protocol.
  const failedBefore = publisher.failed.length;
  await publisher.moreFailed(3);
  assert.ok(publisher.failed.slice(failedBefore).every((f) => f.status === 503), JSON.stringify(publisher.failed.slice(-3)));
  const ws = await connectChannels(a.port);
  cleanup.push(() => ws.close());
  const reply = await request(ws, { type: 'publish', channel: CHANNEL, data: 'during the outage' });
  assert.equal(reply.type, 'error');
  assert.equal(reply.code, 'unavailable');

  await redis.start();
  for (const n of ns) await untilReadyz(n.port, 200);
  await publisher.moreAcked(20);
  await publisher.stop();

  await assertNoLoss(clients, publisher);
  for (const c of clients) assert.deepEqual(c.closeCodes, [], 'caught up in place: history survived the restart');
  assert.ok(!clients.some((c) => c.received.some((r) => r.data === 'during the outage')), 'a refused publish was not delivered');
});

test('a node cut off from Redis while the other keeps publishing: when the link is back its subscribers get everything they missed, in order, without reconnecting', async () => {
  const link = await TcpProxy.start(Number(new URL(REDIS_URL).port || 6379), new URL(REDIS_URL).hostname);
  cleanup.push(() => link.close());
  const ns = await nodes([`redis://127.0.0.1:${link.port}`, REDIS_URL], ['--drain-timeout', '0.5']);
  const [a, b] = ns as [ServerProcess, ServerProcess];
  const onA = await subscribers(5, `ws://127.0.0.1:${a.port}/ws/v1`);
  const onB = await subscribers(5, `ws://127.0.0.1:${b.port}/ws/v1`);
  const clients = [...onA, ...onB];
  const publisher = new ApiPublisher(() => b.port);
  await Promise.all(clients.map((c) => c.until(() => c.received.length >= 5)));

  link.cut();
  await untilReadyz(a.port, 503);
  const ackedAtCut = publisher.acked.length;
  await publisher.moreAcked(20);
  const missedFrom = publisher.acked[ackedAtCut + 1]!;
  assert.ok(onA.every((c) => !c.received.some((r) => r.data === missedFrom)), 'node a\'s subscribers really were cut off');
  link.restore();
  await untilReadyz(a.port, 200);
  await publisher.moreAcked(20);
  await publisher.stop();

  assert.deepEqual(publisher.failed, [], 'node b published throughout');
  await assertNoLoss(clients, publisher);
  for (const c of clients) assert.deepEqual(c.closeCodes, [], 'nobody had to reconnect');
});
