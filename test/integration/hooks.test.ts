/**
 * Back-end hooks (docs/hooks.md) against a real back-end process (test/helpers/hook-backend-process.ts),
 * through a real HAProxy in front of two `fanout serve` processes sharing Redis: who connects
 * (by cookie), who subscribes, what is published, and what clients see when the back end
 * refuses, fails, hangs or is saturated.
 */
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { WebSocket, type ClientOptions } from 'ws';
import { forkFanoutServe, type ServerProcess } from '../../harness/fanout-process.js';
import { startHaproxy, type RunningHaproxy } from '../../harness/haproxy.js';
import { until } from '../../harness/wait.js';
import { REDIS_URL } from '../helpers/brokers.js';
import { startHookBackend, type HookBackend, type HookCall } from '../helpers/hook-backend.js';
import { scrapeUntil } from '../helpers/metrics.js';
import { SECRET as JWT_SECRET, sign as signToken } from '../helpers/security.js';
import { uniquePrefix } from '../helpers/nodes.js';
import { closeAll, connect, TestClient } from '../helpers/ws-client.js';

const SECRET = 'hook-test-secret';

/** What an upgrade got: a 101 (and the open client) or the refusal's status and headers. */
type Upgrade = { readonly open: TestClient } | { readonly status: number; readonly headers: Record<string, string | string[] | undefined> };

function upgrade(url: string, options: ClientOptions = {}): Promise<Upgrade> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, options);
    const client = new TestClient(ws);
    ws.once('open', () => resolve({ open: client }));
    ws.once('unexpected-response', (_req, res) => {
      resolve({ status: res.statusCode ?? 0, headers: res.headers });
      res.resume();
      ws.terminate();
    });
    ws.once('error', reject);
  });
}

function refusal(result: Upgrade): { status: number; headers: Record<string, string | string[] | undefined> } {
  if ('open' in result) {
    result.open.close();
    assert.fail('the upgrade was accepted');
  }
  return result;
}

/** Opens a channel-protocol socket with `session=<name>` and returns it with its `connected` frame. */
async function session(url: string, name: string, query = ''): Promise<{ client: TestClient; id: string; node: string }> {
  const client = await connect(`${url}/ws/v1${query}`, { headers: { cookie: `theme=dark; session=${name}` } });
  const hello = await client.json<{ client: string; node: string }>((f) => f['type'] === 'connected');
  return { client, id: hello.client, node: hello.node };
}

function sign(body: unknown): string {
  return 'sha256=' + createHmac('sha256', SECRET).update(JSON.stringify(body)).digest('hex');
}

describe('hooks through HAProxy with two nodes', () => {
  let backend: HookBackend;
  let nodes: ServerProcess[] = [];
  let proxy: RunningHaproxy;
  let url: string;
  const clients: TestClient[] = [];

  before(async () => {
    backend = await startHookBackend(SECRET);
    const prefix = uniquePrefix('hooks');
    const flags = [
      '--bus', REDIS_URL, '--bus-prefix', prefix, '--trust-proxy', '127.0.0.1',
      '--connect-hook', backend.url('connect'),
      '--subscribe-hook', backend.url('subscribe'),
      '--publish-hook', backend.url('publish'),
      '--hook-secret', SECRET,
      '--hook-timeout', '1',
      '--drain-delay', '0',
    ];
    nodes = await Promise.all([1, 2].map((i) => forkFanoutServe([...flags, '--node-id', `hooks${i}`])));
    proxy = await startHaproxy(nodes.map((n) => n.port));
    url = `ws://127.0.0.1:${proxy.port}`;
  });

  after(async () => {
    closeAll(clients);
    await proxy?.stop();
    await Promise.all(nodes.map((n) => n.stop()));
    await backend?.stop();
  });

  test('a session cookie admits: the connect hook hears the request and its answer is the identity', async () => {
    const origin = `http://127.0.0.1:${proxy.port}`;
    const client = await connect(`${url}/ws/v1?room=1&room=2&lang=en`, { origin, headers: { cookie: 'session=alice', 'user-agent': 'hook-test/1' } });
    clients.push(client);
    const hello = await client.json<{ client: string; node: string }>((f) => f['type'] === 'connected');
    const call = (await backend.calls()).calls.find((c) => c.hook === 'connect' && c.body['client'] === hello.client);
    assert.ok(call, 'the connect hook was called with the id the socket got');
    assert.deepEqual(call.body, {
      client: hello.client,
      ip: '127.0.0.1',
      origin,
      path: '/ws/v1',
      query: { room: '1', lang: 'en' },
      headers: { cookie: 'session=alice', 'user-agent': 'hook-test/1' },
    });
    assert.equal(call.node, hello.node, 'X-Fanout-Node names the node that asked');
    assert.equal(call.contentType, 'application/json');
    // The identity's patterns (room:*) allow this without asking the subscribe hook.
    client.sendJson({ type: 'subscribe', channel: 'room:lobby', id: 1 });
    const subscribed = await client.json((f) => f['type'] === 'subscribed' && f['id'] === 1);
    assert.equal(subscribed['data'], undefined);
    assert.ok(!(await backend.calls()).calls.some((c) => c.hook === 'subscribe' && c.body['channel'] === 'room:lobby'), 'patterns that allow need no hook');
    // A channel the patterns do not allow and the hook does not either.
    client.sendJson({ type: 'subscribe', channel: 'news', id: 2 });
    const refused = await client.json((f) => f['type'] === 'error' && f['id'] === 2);
    assert.equal(refused['code'], 'forbidden');
    assert.equal(refused['message'], 'not allowed to subscribe to news', 'a 403 without a reason: the default text');
  });

  test('the connect hook refuses with 401 and 403, and a failing back end gets 503 with Retry-After, never a 101', async () => {
    assert.equal(refusal(await upgrade(`${url}/ws/v1`)).status, 401, 'no session');
    assert.equal(refusal(await upgrade(`${url}/ws/v1`, { headers: { cookie: 'session=banned' } })).status, 403);
    assert.equal(refusal(await upgrade(`${url}/ws/echo`, { headers: { cookie: 'session=nobody' } })).status, 401, 'every WebSocket path is guarded');
    const crashed = refusal(await upgrade(`${url}/ws/v1`, { headers: { cookie: 'session=crash' } }));
    assert.equal(crashed.status, 503, 'a 5xx');
    assert.equal(crashed.headers['retry-after'], '5');
    // The upgrade check, through HAProxy, says the same with the back end's reason; a 5xx stays private.
    const check = async (cookie: string): Promise<{ status: number; body: unknown }> => {
      const res = await fetch(`http://127.0.0.1:${proxy.port}/ws/v1/check`, { method: 'POST', headers: { cookie } });
      return { status: res.status, body: await res.json() };
    };
    assert.deepEqual(await check('session=banned'), { status: 403, body: { error: 'forbidden', message: 'the back end refused the connection: you are banned', by: 'connect_hook' } });
    assert.deepEqual(await check('session=nobody'), { status: 401, body: { error: 'unauthorized', message: 'the back end refused the connection: log in first', by: 'connect_hook' } });
    assert.deepEqual(await check('session=crash'), { status: 503, body: { error: 'unavailable', message: 'the connect hook failed', by: 'connect_hook' } });
  });

  test('a back end that never answers: the upgrade is refused with 503 once --hook-timeout passes', async () => {
    const hung = refusal(await upgrade(`${url}/ws/v1`, { headers: { cookie: 'session=hang' } }));
    assert.equal(hung.status, 503);
    assert.equal(hung.headers['retry-after'], '5');
    // The node is not stuck: the next client is admitted.
    const { client } = await session(url, 'bob');
    clients.push(client);
  });

  test('the subscribe hook: its data arrives in the subscribed frame, its 403 is forbidden, its silence is unavailable', async () => {
    const { client, id } = await session(url, 'alice');
    clients.push(client);
    client.sendJson({ type: 'subscribe', channel: 'private:alice', id: 1 });
    const mine = await client.json((f) => f['type'] === 'subscribed' && f['id'] === 1);
    assert.deepEqual(mine['data'], { welcome: 'alice' });
    const call = (await backend.calls()).calls.find((c) => c.hook === 'subscribe' && c.body['client'] === id);
    assert.deepEqual(call?.body, { client: id, user: 'alice', channel: 'private:alice', meta: { name: 'Alice' } });
    // History of a channel the hook allowed is the subscriber's to read.
    client.sendJson({ type: 'history', channel: 'private:alice', id: 2 });
    assert.equal((await client.json((f) => f['id'] === 2))['type'], 'history');

    client.sendJson({ type: 'subscribe', channel: 'private:bob', id: 3 });
    const notYours = await client.json((f) => f['type'] === 'error' && f['id'] === 3);
    assert.equal(notYours['code'], 'forbidden');
    // The back end's reason, cleaned: its newline and bidi override are spaces, and it is cut at 200 characters.
    const reason = String(notYours['message']);
    assert.match(reason, /^private:bob is not yours x+…$/);
    assert.equal([...reason].length, 200);
    client.sendJson({ type: 'history', channel: 'private:bob', id: 4 });
    assert.equal((await client.json((f) => f['type'] === 'error' && f['id'] === 4))['code'], 'forbidden');

    client.sendJson({ type: 'subscribe', channel: 'slow:x', id: 5 });
    const slow = await client.json((f) => f['type'] === 'error' && f['id'] === 5);
    assert.equal(slow['code'], 'unavailable');
    assert.equal(slow['message'], 'cannot subscribe now: the subscribe hook failed; retry', 'no detail of the back end reaches the client');
    // Still a working connection, and the channel can be asked for again.
    client.sendJson({ type: 'subscribe', channel: 'open:y', id: 6 });
    const open = await client.json((f) => f['type'] === 'subscribed' && f['id'] === 6);
    assert.equal(open['data'], undefined, 'a 200 without a body allows without data');

    // An unsubscribe while the hook is asked cancels the subscribe: its late answer is dropped.
    client.sendJson({ type: 'subscribe', channel: 'slow:z', id: 7 });
    client.sendJson({ type: 'subscribe', channel: 'slow:z', id: 8 });
    assert.equal((await client.json((f) => f['type'] === 'error' && f['id'] === 8))['code'], 'bad_request', 'it counts as subscribed meanwhile');
    client.sendJson({ type: 'unsubscribe', channel: 'slow:z', id: 9 });
    await client.json((f) => f['type'] === 'unsubscribed' && f['id'] === 9);
    await backend.untilHeld(1);
    await until(async () => (await backend.calls()).held === 0, { timeoutMs: 10_000, intervalMs: 20, what: 'the node to give up on the hook call' });
    client.sendJson({ type: 'subscribe', channel: 'open:after', id: 10 });
    await client.json((f) => f['type'] === 'subscribed' && f['id'] === 10);
    assert.ok(!client.messages.some((t) => (JSON.parse(t) as { id?: number }).id === 7), 'nothing for the cancelled subscribe');
  });

  test('one address has at most 8 hook calls in flight: past them its requests are rate_limited at once', async () => {
    const { client } = await session(url, 'alice');
    clients.push(client);
    for (let i = 1; i <= 9; i++) client.sendJson({ type: 'subscribe', channel: `slow:many${i}`, id: 100 + i });
    assert.equal((await client.json((f) => f['type'] === 'error' && f['id'] === 109))['code'], 'rate_limited');
    for (let i = 1; i <= 8; i++) assert.equal((await client.json((f) => f['type'] === 'error' && f['id'] === 100 + i))['code'], 'unavailable');
  });

  test('the publish hook replaces the data for subscribers on both nodes, and its 403 refuses', async () => {
    const alice = await session(url, 'alice');
    clients.push(alice.client);
    let bob = await session(url, 'bob');
    clients.push(bob.client);
    for (let i = 0; i < 4 && bob.node === alice.node; i++) {
      bob = await session(url, 'bob');
      clients.push(bob.client);
    }
    assert.notEqual(bob.node, alice.node, 'HAProxy put the two on different nodes');
    for (const { client } of [alice, bob]) {
      client.sendJson({ type: 'subscribe', channel: 'room:pub', id: 10 });
      await client.json((f) => f['type'] === 'subscribed' && f['id'] === 10);
    }
    alice.client.sendJson({ type: 'publish', channel: 'room:pub', data: { text: '   hello there  ' }, id: 11 });
    assert.equal((await alice.client.json((f) => f['id'] === 11))['type'], 'ack');
    for (const { client } of [alice, bob]) {
      const message = await client.json((f) => f['type'] === 'message' && f['channel'] === 'room:pub');
      assert.deepEqual(message['data'], { text: 'hello there', by: 'alice' });
    }
    alice.client.sendJson({ type: 'publish', channel: 'room:pub', data: { text: '    ' }, id: 12 });
    const empty = await alice.client.json((f) => f['type'] === 'error' && f['id'] === 12);
    assert.equal(empty['code'], 'forbidden');
    assert.equal(empty['message'], 'say something', "the back end's reason is the message");
    // Publishes of one connection are stored in the order they were sent.
    for (let i = 0; i < 5; i++) alice.client.sendJson({ type: 'publish', channel: 'room:pub', data: { text: `n${i}` } });
    const texts = (): Array<string | undefined> =>
      bob.client.messages.map((t) => JSON.parse(t) as { type: string; data?: { text?: string } }).filter((f) => f.type === 'message').map((f) => f.data?.text);
    await bob.client.until(() => texts().length >= 6);
    assert.deepEqual(texts(), ['hello there', 'n0', 'n1', 'n2', 'n3', 'n4'], 'the empty message was never published; the rest in order');
    const call = (await backend.calls()).calls.find((c) => c.hook === 'publish' && c.body['client'] === alice.id);
    assert.deepEqual(call?.body, { client: alice.id, user: 'alice', channel: 'room:pub', meta: { name: 'Alice' }, data: { text: '   hello there  ' } });
  });

  test('every call carries X-Fanout-Node and a signature the back end can verify with --hook-secret', async () => {
    const { calls } = await backend.calls();
    assert.ok(calls.length >= 10);
    const names = new Set(nodes.map((n) => n.id));
    for (const call of calls) {
      assert.ok(call.node && names.has(call.node), `X-Fanout-Node ${call.node}`);
      assert.ok(call.signatureValid, `the back end verified the ${call.hook} call's signature`);
      assert.match(call.signature ?? '', /^sha256=[0-9a-f]{64}$/);
    }
    // The signature is of the exact bytes sent: the node writes compact JSON, so this recomputes it.
    const some: HookCall = calls.find((c) => c.hook === 'subscribe')!;
    assert.equal(some.signature, sign(some.body));
  });

  test('the hook calls are counted in the metrics by hook and result', async () => {
    const scrapes = await Promise.all(nodes.map((n) => scrapeUntil(`http://127.0.0.1:${n.port}`, (s) => s.has('fanout_hook_requests_total'))));
    const sum = (labels: Record<string, string>): number => scrapes.reduce((n, s) => n + s.value('fanout_hook_requests_total', labels), 0);
    assert.ok(sum({ hook: 'connect', result: 'allowed' }) >= 3);
    assert.ok(sum({ hook: 'connect', result: 'refused' }) >= 3);
    assert.ok(sum({ hook: 'connect', result: 'error' }) >= 1, 'the 500');
    assert.ok(sum({ hook: 'connect', result: 'timeout' }) >= 1, 'the hung back end');
    assert.ok(sum({ hook: 'subscribe', result: 'timeout' }) >= 1);
    assert.ok(sum({ hook: 'publish', result: 'refused' }) >= 1);
    const latency = scrapes.reduce((n, s) => n + s.value('fanout_hook_latency_seconds_count', { hook: 'publish' }), 0);
    assert.ok(latency >= 7, 'each publish call was timed');
  });
});

describe('--hook-concurrency', () => {
  let backend: HookBackend;
  let node: ServerProcess;
  const clients: TestClient[] = [];
  const hanging: WebSocket[] = [];

  before(async () => {
    backend = await startHookBackend(SECRET);
    node = await forkFanoutServe([
      '--connect-hook', backend.url('connect'),
      '--subscribe-hook', backend.url('subscribe'),
      '--hook-concurrency', '2',
      '--hook-timeout', '30',
      '--drain-delay', '0',
    ]);
  });

  after(async () => {
    closeAll(clients);
    for (const ws of hanging) ws.terminate();
    await node?.stop();
    await backend?.stop();
  });

  test('past the cap a handshake gets 503 with Retry-After and a subscribe gets unavailable, at once, not queued', async () => {
    const url = `ws://127.0.0.1:${node.port}`;
    const { client } = await session(url, 'alice');
    clients.push(client);
    // A handshake whose connect call the back end never answers takes the connect share (half of 2).
    const ws = new WebSocket(`${url}/ws/v1`, { headers: { cookie: 'session=hang' } });
    ws.on('error', () => {});
    hanging.push(ws);
    await backend.untilHeld(1);
    const refused = refusal(await upgrade(`${url}/ws/v1`, { headers: { cookie: 'session=bob' } }));
    assert.equal(refused.status, 503);
    assert.equal(refused.headers['retry-after'], '5');
    // The other slot is the established client's: the waiting upgrade does not take it.
    client.sendJson({ type: 'subscribe', channel: 'slow:a', id: 1 });
    await backend.untilHeld(2);
    client.sendJson({ type: 'subscribe', channel: 'private:alice', id: 2 });
    const busy = await client.json((f) => f['type'] === 'error' && f['id'] === 2);
    assert.equal(busy['code'], 'unavailable');
    assert.match(String(busy['message']), /--hook-concurrency/);
    // The admitted client is served meanwhile: its patterns need no hook.
    client.sendJson({ type: 'subscribe', channel: 'room:a', id: 3 });
    await client.json((f) => f['type'] === 'subscribed' && f['id'] === 3);
    const metrics = await scrapeUntil(`http://127.0.0.1:${node.port}`, (s) => s.value('fanout_hook_requests_total', { result: 'overloaded' }) >= 2);
    assert.equal(metrics.value('fanout_hook_requests_total', { hook: 'connect', result: 'overloaded' }), 1);
    assert.equal(metrics.value('fanout_hook_requests_total', { hook: 'subscribe', result: 'overloaded' }), 1);
  });
});

describe('a JWT option and a connect hook', () => {
  let backend: HookBackend;
  let node: ServerProcess;
  const clients: TestClient[] = [];

  before(async () => {
    backend = await startHookBackend(SECRET);
    node = await forkFanoutServe(['--jwt-secret', JWT_SECRET, '--connect-hook', backend.url('connect'), '--presence', 'room:*', '--drain-delay', '0']);
  });

  after(async () => {
    closeAll(clients);
    await node?.stop();
    await backend?.stop();
  });

  test('a valid JWT admits without the hook; without one (or with a bad one) the hook decides', async () => {
    const url = `ws://127.0.0.1:${node.port}`;
    const token = await signToken({ channels: ['room:*'] }, { sub: 'tokenholder' });
    const withToken = await connect(`${url}/ws/v1?token=${token}`);
    clients.push(withToken);
    const hello = await withToken.json<{ client: string }>((f) => f['type'] === 'connected');
    assert.ok(!(await backend.calls()).calls.some((c) => c.body['client'] === hello.client), 'the hook was not asked');

    const { client, id } = await session(url, 'alice', '?token=not.a.valid-token');
    clients.push(client);
    assert.ok((await backend.calls()).calls.some((c) => c.hook === 'connect' && c.body['client'] === id));
    // The hook's user is the connection's user: presence shows it.
    client.sendJson({ type: 'subscribe', channel: 'room:p', id: 1 });
    const join = await client.json((f) => f['type'] === 'join' && f['client'] === id);
    assert.equal(join['user'], 'alice');

    assert.equal(refusal(await upgrade(`${url}/ws/v1`)).status, 401, 'no token, no session: the hook says 401');
  });
});
