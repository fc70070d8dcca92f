/**
 * Hooks are shared fairly (docs/hooks.md, "Limits"), against a real `fanout serve` and a real
 * back-end process that sleeps on connect: a flood of pending upgrades, from one address and from
 * many, does not cost an established client its subscribe and publish calls; one address's
 * connect calls, pending upgrades and subscribe calls are capped across its connections; a client
 * that goes away takes its call with it; what the publish hook substitutes obeys --max-payload;
 * every query key reaches the connect hook.
 *
 * Client addresses are loopback addresses other than 127.0.0.1 (`localAddress`): the node sees
 * each as its own client, as it would see hosts on a network.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { WebSocket } from 'ws';
import { forkFanoutServe, type ServerProcess } from '../../harness/fanout-process.js';
import { until } from '../../harness/wait.js';
import { startHookBackend, type HookBackend } from '../helpers/hook-backend.js';
import { frame, handshake, rawConnect } from '../helpers/raw-ws.js';
import { scrapeUntil } from '../helpers/metrics.js';
import { connect, TestClient } from '../helpers/ws-client.js';

const SECRET = 'fairness-secret';
/** Sleeping connect calls stay asleep until the test wakes them. */
const SLEEP_MS = 60_000;

/** An upgrade in progress: its socket, and how it ended (`open`, or the refusal's status and Retry-After). */
interface Attempt {
  readonly ws: WebSocket;
  readonly address: string;
  outcome: { readonly status: number | 'open'; readonly retryAfter?: string | undefined } | undefined;
  readonly done: Promise<void>;
}

function attempt(url: string, address: string, cookie: string): Attempt {
  const ws = new WebSocket(`${url}/ws/v1`, { localAddress: address, headers: { cookie } });
  const result: Attempt = { ws, address, outcome: undefined, done: Promise.resolve() };
  ws.on('error', () => {});
  (result as { done: Promise<void> }).done = new Promise<void>((resolve) => {
    ws.once('open', () => {
      result.outcome = { status: 'open' };
      resolve();
    });
    ws.once('unexpected-response', (_req, res) => {
      result.outcome = { status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'] };
      res.resume();
      ws.terminate();
      resolve();
    });
    ws.once('close', () => resolve());
  });
  return result;
}

async function session(url: string, name: string, address: string, query = ''): Promise<{ client: TestClient; id: string }> {
  const client = await connect(`${url}/ws/v1${query}`, { localAddress: address, headers: { cookie: `session=${name}` } });
  const hello = await client.json<{ client: string }>((f) => f['type'] === 'connected');
  return { client, id: hello.client };
}

/** Sends one request frame and waits for the frame answering its id. */
async function ask(client: TestClient, frame: Record<string, unknown> & { id: number }): Promise<Record<string, unknown>> {
  client.sendJson(frame);
  return client.json((f) => f['id'] === frame.id && f['type'] !== 'message');
}

describe('a flood of pending upgrades against a back end that sleeps on connect', () => {
  let backend: HookBackend;
  let node: ServerProcess;
  let url: string;
  const attempts: Attempt[] = [];
  const clients: TestClient[] = [];

  before(async () => {
    backend = await startHookBackend(SECRET, { sleepMs: SLEEP_MS });
    node = await forkFanoutServe([
      '--connect-hook', backend.url('connect'),
      '--subscribe-hook', backend.url('subscribe'),
      '--publish-hook', backend.url('publish'),
      '--hook-secret', SECRET,
      '--hook-timeout', '60',
      '--drain-delay', '0',
    ]);
    url = `ws://127.0.0.1:${node.port}`;
  });

  after(async () => {
    for (const a of attempts) a.ws.terminate();
    for (const c of clients) c.close();
    await node?.stop();
    await backend?.stop();
  });

  test("200 pending upgrades from one address and 200 from others: an established client's subscribe and publish calls all succeed", async () => {
    const alice = await session(url, 'alice', '127.0.0.1');
    clients.push(alice.client);
    for (let i = 0; i < 200; i++) attempts.push(attempt(url, '127.0.0.2', 'session=sleep'));
    for (let i = 0; i < 200; i++) attempts.push(attempt(url, `127.0.0.${3 + i}`, 'session=sleep'));
    // The connect share (half of the default 64) is asleep in the back end; every other upgrade
    // was refused at once.
    const share = 32;
    await backend.untilHeld(share);
    await until(() => attempts.filter((a) => a.outcome).length === attempts.length - share, { timeoutMs: 30_000, what: 'the refusals' });
    for (const a of attempts.filter((x) => x.outcome)) assert.deepEqual(a.outcome, { status: 503, retryAfter: '5' });
    const before = await backend.calls();
    assert.equal(before.held, share);
    const fromOne = before.calls.filter((c) => c.hook === 'connect' && c.body['ip'] === '127.0.0.2').length;
    assert.ok(fromOne <= 4, `one address had ${fromOne} connect calls sent, at most 4`);

    // Meanwhile the established client asks the subscribe and publish hooks, and every call succeeds.
    assert.equal((await ask(alice.client, { type: 'subscribe', channel: 'room:fair', id: 1 }))['type'], 'subscribed');
    const mine = await ask(alice.client, { type: 'subscribe', channel: 'private:alice', id: 2 });
    assert.deepEqual([mine['type'], mine['data']], ['subscribed', { welcome: 'alice' }]);
    for (let i = 0; i < 20; i++) {
      const subscribed = await ask(alice.client, { type: 'subscribe', channel: `open:${i}`, id: 100 + i });
      assert.equal(subscribed['type'], 'subscribed', JSON.stringify(subscribed));
      const acked = await ask(alice.client, { type: 'publish', channel: 'room:fair', data: { text: ` n${i} ` }, id: 200 + i });
      assert.equal(acked['type'], 'ack', JSON.stringify(acked));
    }
    await alice.client.until(() => alice.client.messages.filter((t) => t.includes('"type":"message"')).length >= 20);
    const texts = alice.client.messages.map((t) => JSON.parse(t) as { type: string; data?: { text?: string } }).filter((f) => f.type === 'message').map((f) => f.data?.text);
    assert.deepEqual(texts, Array.from({ length: 20 }, (_, i) => `n${i}`), 'what the publish hook returned was published');
    const during = await backend.calls();
    assert.equal(during.held, share, 'the upgrades were waiting on the back end all along');
    assert.equal(during.calls.filter((c) => c.hook === 'connect').length, before.calls.filter((c) => c.hook === 'connect').length, 'no refused upgrade reached the back end later');

    // Woken, the sleeping upgrades are admitted.
    await backend.wake();
    await Promise.all(attempts.map((a) => a.done));
    assert.equal(attempts.filter((a) => a.outcome?.status === 'open').length, share);
    const metrics = await scrapeUntil(`http://127.0.0.1:${node.port}`, (s) => s.value('fanout_hook_requests_total', { hook: 'connect', result: 'allowed' }) >= share + 1);
    assert.equal(metrics.value('fanout_hook_requests_total', { hook: 'connect', result: 'overloaded' }), attempts.length - share);
    assert.equal(metrics.value('fanout_hook_requests_total', { hook: 'subscribe', result: 'overloaded' }), 0);
    assert.equal(metrics.value('fanout_hook_requests_total', { hook: 'publish', result: 'overloaded' }), 0);
  });
});

describe('per-address caps, pending upgrades, clients that go away, substituted data, query keys', () => {
  let backend: HookBackend;
  let node: ServerProcess;
  let url: string;
  const attempts: Attempt[] = [];
  const clients: TestClient[] = [];

  before(async () => {
    backend = await startHookBackend(SECRET, { sleepMs: SLEEP_MS });
    node = await forkFanoutServe([
      '--connect-hook', backend.url('connect'),
      '--subscribe-hook', backend.url('subscribe'),
      '--publish-hook', backend.url('publish'),
      '--hook-secret', SECRET,
      '--hook-timeout', '60',
      '--max-connections-per-ip', '5',
      '--drain-delay', '0',
    ]);
    url = `ws://127.0.0.1:${node.port}`;
  });

  after(async () => {
    for (const a of attempts) a.ws.terminate();
    for (const c of clients) c.close();
    await node?.stop();
    await backend?.stop();
  });

  const heldFrom = async (address: string): Promise<number> => (await backend.calls()).heldIps.filter((ip) => ip === address).length;
  const connectCallsFrom = async (address: string): Promise<number> => (await backend.calls()).calls.filter((c) => c.hook === 'connect' && c.body['ip'] === address).length;
  const untilHeldFrom = (address: string, count: number): Promise<void> =>
    until(async () => (await heldFrom(address)) === count, { timeoutMs: 10_000, intervalMs: 20, what: `${count} connect calls from ${address} held` });

  test('past 4 connect calls in flight from one address, its next upgrade gets 503 at once and the back end is not asked', async () => {
    const address = '127.0.0.20';
    for (let i = 0; i < 4; i++) attempts.push(attempt(url, address, 'session=sleep'));
    await untilHeldFrom(address, 4);
    const fifth = attempt(url, address, 'session=sleep');
    attempts.push(fifth);
    await fifth.done;
    assert.deepEqual(fifth.outcome, { status: 503, retryAfter: '5' });
    // Answered while the four were still asleep, without asking.
    assert.equal(await heldFrom(address), 4);
    assert.equal(await connectCallsFrom(address), 4);
    // Another address is not held back.
    const other = await session(url, 'bob', '127.0.0.30');
    clients.push(other.client);
  });

  test('pending upgrades count towards --max-connections-per-ip: one open and four pending, the next gets 429', async () => {
    const address = '127.0.0.21';
    const open = await session(url, 'alice', address);
    clients.push(open.client);
    for (let i = 0; i < 4; i++) attempts.push(attempt(url, address, 'session=sleep'));
    await untilHeldFrom(address, 4);
    const sixth = attempt(url, address, 'session=sleep');
    attempts.push(sixth);
    await sixth.done;
    assert.deepEqual(sixth.outcome, { status: 429, retryAfter: '5' });
    assert.equal(await connectCallsFrom(address), 5, 'the open one and the four pending; the sixth was not asked about');
  });

  test('a client that closes during its connect call frees its slot: the back end sees the request aborted', async () => {
    const address = '127.0.0.22';
    const pending = Array.from({ length: 4 }, () => attempt(url, address, 'session=sleep'));
    attempts.push(...pending);
    await untilHeldFrom(address, 4);
    const gone = (await backend.calls()).calls.filter((c) => c.hook === 'connect' && c.body['ip'] === address);
    pending[0]!.ws.terminate();
    await until(async () => (await backend.calls()).aborted.some((a) => a.hook === 'connect' && a.body['ip'] === address), {
      timeoutMs: 10_000,
      intervalMs: 20,
      what: 'the back end to see the call aborted',
    });
    assert.equal(await heldFrom(address), 3);
    // The slot (the address's connect share and its pending count) is free again: the next upgrade is asked about.
    const next = attempt(url, address, 'session=sleep');
    attempts.push(next);
    await untilHeldFrom(address, 4);
    assert.equal(await connectCallsFrom(address), gone.length + 1);
    const metrics = await scrapeUntil(`http://127.0.0.1:${node.port}`, (s) => s.value('fanout_hook_requests_total', { hook: 'connect', result: 'abandoned' }) >= 1);
    assert.equal(metrics.value('fanout_hook_requests_total', { hook: 'connect', result: 'abandoned' }), 1);
  });

  test('8 subscribe calls in flight from one address, across its connections: the 9th is rate_limited; a socket that closes abandons its calls', async () => {
    const address = '127.0.0.23';
    const first = await session(url, 'alice', address);
    const second = await session(url, 'alice', address);
    const elsewhere = await session(url, 'alice', '127.0.0.24');
    clients.push(first.client, second.client, elsewhere.client);
    const heldBefore = (await backend.calls()).held;
    for (let i = 0; i < 4; i++) first.client.sendJson({ type: 'subscribe', channel: `slow:a${i}`, id: 1 + i });
    for (let i = 0; i < 4; i++) second.client.sendJson({ type: 'subscribe', channel: `slow:b${i}`, id: 1 + i });
    await backend.untilHeld(heldBefore + 8);
    const ninth = await ask(second.client, { type: 'subscribe', channel: 'open:ninth', id: 9 });
    assert.equal(ninth['code'], 'rate_limited');
    assert.match(String(ninth['message']), /8 back-end hook calls already in flight from this address/);
    assert.equal((await ask(elsewhere.client, { type: 'subscribe', channel: 'open:x', id: 1 }))['type'], 'subscribed', 'another address is served');
    // The first socket goes away: its four calls are abandoned and their slots freed.
    first.client.ws.terminate();
    await until(async () => (await backend.calls()).aborted.filter((a) => a.hook === 'subscribe' && a.body['client'] === first.id).length === 4, {
      timeoutMs: 10_000,
      intervalMs: 20,
      what: "the back end to see the closed socket's calls aborted",
    });
    assert.equal((await backend.calls()).held, heldBefore + 4);
    assert.equal((await ask(second.client, { type: 'subscribe', channel: 'open:after', id: 10 }))['type'], 'subscribed');
  });

  test('data the publish hook substitutes over --max-payload is too_large and stored nowhere', async () => {
    const { client } = await session(url, 'alice', '127.0.0.25');
    clients.push(client);
    assert.equal((await ask(client, { type: 'subscribe', channel: 'room:big', id: 1 }))['type'], 'subscribed');
    const big = await ask(client, { type: 'publish', channel: 'room:big', data: { grow: 70 * 1024 }, id: 2 });
    assert.equal(big['type'], 'error');
    assert.equal(big['code'], 'too_large');
    assert.match(String(big['message']), /over --max-payload \(65536 bytes\)/);
    assert.equal((await ask(client, { type: 'publish', channel: 'room:big', data: { grow: 100 }, id: 3 }))['type'], 'ack');
    const history = await ask(client, { type: 'history', channel: 'room:big', id: 4 });
    assert.deepEqual(
      (history['messages'] as Array<{ data: unknown }>).map((m) => m.data),
      ['x'.repeat(100)],
      'only the message within --max-payload was stored',
    );
    const delivered = client.messages.map((t) => JSON.parse(t) as { type: string; channel?: string }).filter((f) => f.type === 'message' && f.channel === 'room:big');
    assert.equal(delivered.length, 1);
  });

  test('query keys reach the connect hook whatever their names', async () => {
    const { client, id } = await session(url, 'alice', '127.0.0.26', '?__proto__=a&constructor=b&toString=c&hasOwnProperty=d&room=1');
    clients.push(client);
    const call = (await backend.calls()).calls.find((c) => c.hook === 'connect' && c.body['client'] === id);
    assert.ok(call);
    assert.deepEqual(Object.entries(call.body['query'] as object), [
      ['__proto__', 'a'],
      ['constructor', 'b'],
      ['toString', 'c'],
      ['hasOwnProperty', 'd'],
      ['room', '1'],
    ]);
    assert.ok(call.callId && /^[0-9a-f-]{36}$/.test(call.callId), 'every call carries X-Fanout-Call-Id');
  });

  // Last: waking the sleeping connect calls admits every upgrade still asleep in this suite.
  test('what a client sends while its connect call sleeps is read after its 101, not lost', async () => {
    const address = '127.0.0.27';
    const peer = await rawConnect(node.port, { localAddress: address });
    try {
      peer.write(handshake('/ws/v1', ['Cookie: session=sleep']));
      await untilHeldFrom(address, 1);
      // Too early by RFC 6455, but kept: the node reads the socket while it waits, to notice a hang-up.
      peer.write(frame(0x1, JSON.stringify({ type: 'subscribe', channel: 'room:early', id: 1 })));
      await backend.wake();
      await peer.until(() => peer.texts.some((t) => t.includes('"type":"subscribed"')), 5000, 'the early subscribe answered');
      assert.equal(peer.response?.status, 101);
      assert.deepEqual(
        peer.texts.map((t) => (JSON.parse(t) as { type: string }).type),
        ['connected', 'subscribed'],
      );
    } finally {
      peer.destroy();
    }
  });
});
