/**
 * --webhook (docs/hooks.md#webhooks) against a real back-end process (test/helpers/hook-backend-process.ts
 * answers 500 to its first two webhook requests, then 200), through a real HAProxy in front of two
 * `fanout serve` processes sharing Redis: events once per cluster, per user, signed, retried
 * without loss, and sent for a node that was SIGKILLed.
 *
 * test-runner: rabbitmq (one case starts nodes on the machine's RabbitMQ, which the bus suite restarts).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { FANOUT_MAIN, forkFanoutServe, forkListening, type ServerProcess } from '../../harness/fanout-process.js';
import { startHaproxy, type RunningHaproxy } from '../../harness/haproxy.js';
import { until } from '../../harness/wait.js';
import { REDIS_URL } from '../helpers/brokers.js';
import { startHookBackend, type HookBackend } from '../helpers/hook-backend.js';
import { scrapeUntil } from '../helpers/metrics.js';
import { uniquePrefix } from '../helpers/nodes.js';
import { SECRET as JWT_SECRET, sign } from '../helpers/security.js';
import { closeAll, connect, type TestClient } from '../helpers/ws-client.js';

const SECRET = 'webhook-test-secret';
const FAILURES = 2;

interface Event {
  readonly id: string;
  readonly name: string;
  readonly channel: string;
  readonly user?: string;
  readonly time_ms: number;
}

describe('webhooks through HAProxy with two nodes and Redis', () => {
  let backend: HookBackend;
  let nodes: ServerProcess[] = [];
  let proxy: RunningHaproxy;
  let url: string;
  const clients: TestClient[] = [];

  before(async () => {
    backend = await startHookBackend(SECRET, { webhookFailures: FAILURES });
    const prefix = uniquePrefix('webhooks');
    const flags = [
      '--bus', REDIS_URL, '--bus-prefix', prefix, '--jwt-secret', JWT_SECRET, '--presence', 'room:*',
      '--presence-ttl', '3', '--webhook', backend.url('webhook'), '--webhook-secret', SECRET,
      '--hook-timeout', '1', '--drain-delay', '0',
    ];
    nodes = await Promise.all([1, 2].map((i) => forkFanoutServe([...flags, '--node-id', `${prefix}-n${i}`])));
    proxy = await startHaproxy(nodes.map((n) => n.port));
    url = `ws://127.0.0.1:${proxy.port}/ws/v1`;
  });

  after(async () => {
    closeAll(clients);
    await proxy?.stop();
    await Promise.all(nodes.map((n) => n.stop()));
    await backend?.stop();
  });

  /** Every webhook request the back end got, in arrival order. */
  async function requests(): Promise<Array<{ node: string | undefined; signatureValid: boolean; contentType: string | undefined; at: number; body: { time_ms: number; events: Event[] } }>> {
    const { calls } = await backend.calls();
    return calls.filter((c) => c.hook === 'webhook') as never;
  }

  /** Events of the requests the back end accepted (all but the first FAILURES). */
  async function delivered(): Promise<Event[]> {
    return (await requests()).slice(FAILURES).flatMap((r) => r.body.events);
  }

  async function untilEvent(match: (e: Event) => boolean, what: string): Promise<void> {
    await until(async () => (await delivered()).some(match), { timeoutMs: 15_000, intervalMs: 50, what });
  }

  function only(events: Event[], name: string, channel: string, user?: string): Event[] {
    return events.filter((e) => e.name === name && e.channel === channel && (user === undefined || e.user === user));
  }

  /** A `user` connection through HAProxy on the node with index `on` (HAProxy places it; we retry until it lands there). */
  async function onNode(user: string, on: number): Promise<TestClient> {
    const token = await sign({ channels: ['room:*'] }, { sub: user });
    for (let i = 0; i < 12; i++) {
      const client = await connect(`${url}?token=${token}`);
      const hello = await client.json<{ node: string }>((f) => f['type'] === 'connected');
      if (hello.node === nodes[on]!.id) {
        clients.push(client);
        return client;
      }
      client.close();
    }
    assert.fail(`HAProxy never placed ${user} on node ${on}`);
  }

  async function subscribe(client: TestClient, channel: string, id: number): Promise<void> {
    client.sendJson({ type: 'subscribe', channel, id });
    await client.json((f) => f['type'] === 'subscribed' && f['id'] === id);
  }

  async function unsubscribe(client: TestClient, channel: string, id: number): Promise<void> {
    client.sendJson({ type: 'unsubscribe', channel, id });
    await client.json((f) => f['type'] === 'unsubscribed' && f['id'] === id);
  }

  test('subscribers on two nodes come and go: one channel_occupied, one channel_vacated, through a back end that failed twice', async () => {
    const alice = await onNode('alice', 0);
    const bob = await onNode('bob', 1);
    await subscribe(alice, 'room:one', 1);
    await untilEvent((e) => e.name === 'channel_occupied' && e.channel === 'room:one', 'channel_occupied');
    await subscribe(bob, 'room:one', 1);
    await untilEvent((e) => e.name === 'member_added' && e.user === 'bob', 'bob added');
    await unsubscribe(bob, 'room:one', 2);
    await untilEvent((e) => e.name === 'member_removed' && e.user === 'bob', 'bob removed');
    await unsubscribe(alice, 'room:one', 2);
    await untilEvent((e) => e.name === 'channel_vacated' && e.channel === 'room:one', 'channel_vacated');

    const events = await delivered();
    const ids = new Set(events.map((e) => e.id));
    assert.equal(ids.size, events.length, 'no event was delivered twice');
    const mine = events.filter((e) => e.channel === 'room:one').map((e) => `${e.name}${e.user ? `:${e.user}` : ''}`);
    assert.deepEqual(mine, ['channel_occupied', 'member_added:alice', 'member_added:bob', 'member_removed:bob', 'member_removed:alice', 'channel_vacated']);

    // The two refused requests were sent again with the same events and ids: none lost.
    const all = await requests();
    assert.ok(all.length > FAILURES);
    const failed = all.slice(0, FAILURES).flatMap((r) => r.body.events);
    assert.ok(failed.length > 0);
    for (const event of failed) assert.deepEqual(events.find((e) => e.id === event.id), event, `event ${event.name} ${event.id} was delivered after the 500s, unchanged`);
  });

  test('member_added / member_removed are per user: two connections of one user on two nodes give one of each', async () => {
    const first = await onNode('carol', 0);
    const second = await onNode('carol', 1);
    await subscribe(first, 'room:two', 1);
    await subscribe(second, 'room:two', 1);
    await untilEvent((e) => e.name === 'member_added' && e.channel === 'room:two', 'carol added');
    await unsubscribe(first, 'room:two', 2);
    const lastLeft = Date.now();
    await unsubscribe(second, 'room:two', 2);
    await untilEvent((e) => e.name === 'channel_vacated' && e.channel === 'room:two', 'room:two vacated');
    const events = await delivered();
    assert.equal(only(events, 'member_added', 'room:two', 'carol').length, 1);
    const removed = only(events, 'member_removed', 'room:two', 'carol');
    assert.equal(removed.length, 1);
    assert.ok(removed[0]!.time_ms >= lastLeft, 'removed when the last connection left, not the first');
    assert.equal(only(events, 'channel_occupied', 'room:two').length, 1);
  });

  test('every request is signed with --webhook-secret, names its node and carries {time_ms, events}', async () => {
    const all = await requests();
    const ids = new Set(nodes.map((n) => n.id));
    for (const request of all) {
      assert.ok(request.signatureValid, 'the back end verified the signature with the secret');
      assert.ok(request.node && ids.has(request.node), `X-Fanout-Node ${request.node}`);
      assert.equal(request.contentType, 'application/json');
      assert.equal(typeof request.body.time_ms, 'number');
      for (const event of request.body.events) {
        assert.match(event.id, /^[0-9a-f-]{36}$/);
        assert.equal(typeof event.time_ms, 'number');
        assert.ok(['channel_occupied', 'channel_vacated', 'member_added', 'member_removed'].includes(event.name));
      }
    }
  });

  test('the events are counted by name and result, and the queue drains', async () => {
    const scrapes = await Promise.all(nodes.map((n) => scrapeUntil(`http://127.0.0.1:${n.port}`, (s) => s.value('fanout_webhook_queue_depth') === 0)));
    const sum = (labels: Record<string, string>): number => scrapes.reduce((n, s) => n + s.value('fanout_webhook_events_total', labels), 0);
    assert.equal(sum({ name: 'channel_occupied', result: 'delivered' }), 2);
    assert.equal(sum({ name: 'channel_vacated', result: 'delivered' }), 2);
    assert.ok(sum({ result: 'retried' }) >= 1, 'the events of the refused requests');
    assert.equal(sum({ result: 'dropped' }), 0);
  });

  test('a node SIGKILLed with subscribers: its channel_vacated and member_removed still arrive, once, from the survivor', async () => {
    const dave = await onNode('dave', 1);
    await subscribe(dave, 'room:kill', 1);
    await untilEvent((e) => e.name === 'member_added' && e.channel === 'room:kill', 'dave added');
    nodes[1]!.child.kill('SIGKILL');
    await untilEvent((e) => e.name === 'channel_vacated' && e.channel === 'room:kill', 'room:kill vacated after the kill');
    await untilEvent((e) => e.name === 'member_removed' && e.channel === 'room:kill', 'dave removed after the kill');
    const events = await delivered();
    assert.equal(only(events, 'channel_vacated', 'room:kill').length, 1);
    assert.equal(only(events, 'member_removed', 'room:kill', 'dave').length, 1);
    const sent = (await requests()).filter((r) => r.body.events.some((e) => e.channel === 'room:kill' && e.name === 'channel_vacated'));
    assert.deepEqual(sent.map((r) => r.node), [nodes[0]!.id], 'the surviving node swept the dead one');
  });
});

describe('--webhook at start', () => {
  const run = promisify(execFile);

  async function exitOf(args: string[]): Promise<{ code: number; stderr: string }> {
    try {
      await run(process.execPath, [FANOUT_MAIN, 'serve', '--port', '0', ...args], { timeout: 10_000 });
      return { code: 0, stderr: '' };
    } catch (err) {
      const e = err as { code: number; stderr: string };
      return { code: e.code, stderr: e.stderr };
    }
  }

  test('--webhook without --webhook-secret exits 2 with one line naming the flag', async () => {
    const { code, stderr } = await exitOf(['--webhook', 'http://127.0.0.1:9/hook']);
    assert.equal(code, 2);
    assert.equal(stderr, 'fanout: invalid --webhook-secret: required with --webhook (the back end verifies every webhook request with it)\n');
  });

  test('a store that cannot count across the cluster refuses --webhook, naming the --history it needs', async () => {
    for (const [args, why] of [
      [['--bus', 'nats://127.0.0.1:4222'], 'history on NATS keeps no such counts yet'],
      [['--bus', 'kafka://127.0.0.1:9092'], 'history on Kafka keeps no such counts yet'],
      [['--bus', 'amqp://guest:guest@127.0.0.1:5672', '--history', 'memory'], 'with --bus amqp, memory history is per node'],
    ] as const) {
      const { code, stderr } = await exitOf(['--webhook', 'http://127.0.0.1:9/hook', '--webhook-secret', 's', ...args, '--log-level', 'silent']);
      assert.equal(code, 2, stderr);
      assert.equal(stderr, `fanout: invalid --webhook: needs channel counts shared by the cluster: give --history redis://… (${why})\n`);
    }
  });
});

describe('the example back end (examples/hooks-backend/server.mjs) with --webhook', () => {
  /** This file is dist/test/integration/…; the example is not compiled. */
  const EXAMPLE = fileURLToPath(new URL('../../../examples/hooks-backend/server.mjs', import.meta.url));
  let backend: ServerProcess;
  let node: ServerProcess;
  const clients: TestClient[] = [];

  before(async () => {
    backend = await forkListening(EXAMPLE, [], { env: { PORT: '0', FANOUT_HOOK_SECRET: 'hooks-s', FANOUT_WEBHOOK_SECRET: 'webhook-s' } });
    const base = `http://127.0.0.1:${backend.port}`;
    node = await forkFanoutServe([
      '--presence', 'chat:*', '--drain-delay', '0', '--hook-secret', 'hooks-s',
      '--connect-hook', `${base}/hooks/connect`, '--subscribe-hook', `${base}/hooks/subscribe`, '--publish-hook', `${base}/hooks/publish`,
      '--webhook', `${base}/hooks/webhook`, '--webhook-secret', 'webhook-s',
    ]);
  });

  after(async () => {
    closeAll(clients);
    await node?.stop();
    await backend?.stop();
  });

  /** The events the example logged, in order. */
  function logged(): Array<{ webhook: string; channel: string; user?: string }> {
    return backend
      .output()
      .split('\n')
      .filter((line) => line.startsWith('{"webhook"'))
      .map((line) => JSON.parse(line) as { webhook: string; channel: string; user?: string });
  }

  test('it verifies the signature and logs each event of a session entering and leaving a room', async () => {
    const res = await fetch(`http://127.0.0.1:${backend.port}/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'name=Erin',
      redirect: 'manual',
    });
    const cookie = (res.headers.get('set-cookie') ?? '').split(';')[0]!;
    const tabs = [await connect(`ws://127.0.0.1:${node.port}/ws/v1`, { headers: { cookie } }), await connect(`ws://127.0.0.1:${node.port}/ws/v1`, { headers: { cookie } })];
    clients.push(...tabs);
    for (const tab of tabs) {
      tab.sendJson({ type: 'subscribe', channel: 'chat:hall', id: 1 });
      await tab.json((f) => f['type'] === 'subscribed');
    }
    await until(() => logged().some((e) => e.webhook === 'member_added'), { timeoutMs: 10_000, what: 'member_added in the log' });
    for (const tab of tabs) tab.close();
    await until(() => logged().some((e) => e.webhook === 'channel_vacated'), { timeoutMs: 10_000, what: 'channel_vacated in the log' });
    const events = logged().map((e) => e.webhook);
    assert.deepEqual(events, ['channel_occupied', 'member_added', 'member_removed', 'channel_vacated'], 'two tabs of one user: one member');
    assert.match(logged()[1]!.user ?? '', /^erin-/);

    const forged = await fetch(`http://127.0.0.1:${backend.port}/hooks/webhook`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-fanout-signature': 'sha256=00' },
      body: '{"time_ms":1,"events":[{"id":"x","name":"channel_vacated","channel":"chat:fake"}]}',
    });
    assert.equal(forged.status, 403, 'a request not signed with the secret is refused');
    assert.ok(!logged().some((e) => e.channel === 'chat:fake'));
  });
});
