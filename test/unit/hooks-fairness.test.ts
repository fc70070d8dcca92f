/**
 * How hook calls share a node (src/hooks/shares.ts), abandon, resend and substitute: against
 * real HTTP back ends on port 0 (node:http), no mocks of the network.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { Hooks, type HookName, type HookResult } from '../../src/hooks/hooks.js';
import { HttpCaller } from '../../src/outbound/http-caller.js';
import { HookShares, MAX_CONNECT_CALLS_PER_ADDRESS, MAX_HOOK_CALLS_PER_ADDRESS } from '../../src/hooks/shares.js';
import { silentLogger } from '../../src/logger.js';
import { connectRequest } from '../../src/transport/gate.js';

interface Seen {
  readonly body: string;
  readonly callId: string | undefined;
}

/** A back end on port 0: `handler` gets every request once its body is read; `seen` logs them. */
async function backEnd(handler: (req: IncomingMessage, res: ServerResponse, body: string) => void): Promise<{ server: Server; url: URL; seen: Seen[]; aborted: () => number }> {
  const seen: Seen[] = [];
  let aborted = 0;
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      seen.push({ body, callId: req.headers['x-fanout-call-id'] as string | undefined });
      res.on('close', () => {
        if (!res.writableFinished) aborted++;
      });
      handler(req, res, body);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, url: new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`), seen, aborted: () => aborted };
}

async function stop(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

function caller(overrides: Partial<ConstructorParameters<typeof HttpCaller>[0]> = {}): HttpCaller {
  return new HttpCaller({ nodeId: 'n1', timeoutMs: 5000, concurrency: 8, secret: undefined, maxAnswerBytes: 1024, ...overrides });
}

async function until(check: () => boolean): Promise<void> {
  while (!check()) await new Promise((resolve) => setImmediate(resolve));
}

test('connect calls get at most half of --hook-concurrency; subscribe and publish calls always find the rest', () => {
  const shares = new HookShares(64);
  assert.equal(shares.connectShare, 32);
  for (let i = 0; i < 32; i++) assert.equal(shares.take('connect', `10.0.0.${i}`), undefined);
  const refused = shares.take('connect', '10.0.1.1');
  assert.equal(refused?.limit, 'node');
  for (let i = 0; i < 32; i++) assert.equal(shares.take('channel', `10.0.2.${i}`), undefined, 'an established client is let through while the connect share is full');
  assert.equal(shares.take('channel', '10.0.3.1')?.limit, 'node', 'past --hook-concurrency, nothing');
  for (let i = 0; i < 32; i++) shares.release('connect', `10.0.0.${i}`);
  for (let i = 0; i < 32; i++) shares.release('channel', `10.0.2.${i}`);
  assert.equal(shares.pending, 0);
  assert.equal(shares.addresses, 0, 'nothing is kept for an address once its calls end');
  // Established calls may use the slots connect calls leave free.
  const quiet = new HookShares(4);
  for (let i = 0; i < 4; i++) assert.equal(quiet.take('channel', `10.0.4.${i}`), undefined);
  assert.equal(new HookShares(1).connectShare, 1, 'with one slot there is nothing to reserve: it is shared');
});

test('one address has at most its own caps in flight, across all of its connections; another address is not held back', () => {
  const shares = new HookShares(64);
  for (let i = 0; i < MAX_CONNECT_CALLS_PER_ADDRESS; i++) assert.equal(shares.take('connect', '10.0.0.1'), undefined);
  const connect = shares.take('connect', '10.0.0.1');
  assert.equal(connect?.limit, 'address');
  assert.match(connect?.message ?? '', new RegExp(`^${MAX_CONNECT_CALLS_PER_ADDRESS} connect-hook calls already in flight from this address`));
  for (let i = 0; i < MAX_HOOK_CALLS_PER_ADDRESS; i++) assert.equal(shares.take('channel', '10.0.0.1'), undefined, 'the two caps are apart');
  assert.equal(shares.take('channel', '10.0.0.1')?.limit, 'address');
  assert.equal(shares.take('connect', '10.0.0.2'), undefined);
  assert.equal(shares.take('channel', '10.0.0.2'), undefined);
  shares.release('channel', '10.0.0.1');
  assert.equal(shares.take('channel', '10.0.0.1'), undefined, 'a slot given back is free again');
});

test('every call carries an X-Fanout-Call-Id of its own', async () => {
  const { server, url, seen } = await backEnd((_req, res) => res.end('{}'));
  const http = caller();
  try {
    await Promise.all([http.post(url, '{"a":1}'), http.post(url, '{"a":2}'), http.post(url, '{"a":3}')]);
    const ids = seen.map((s) => s.callId);
    assert.equal(ids.length, 3);
    for (const id of ids) assert.match(id ?? '', /^[0-9a-f-]{36}$/);
    assert.equal(new Set(ids).size, 3);
  } finally {
    http.close();
    await stop(server);
  }
});

test('a call the back end read and then cut off (closed or reset) is never sent again', async () => {
  for (const cut of ['destroy', 'reset'] as const) {
    const { server, url, seen } = await backEnd((req, res, body) => {
      if (body === '{"cut":true}') {
        if (cut === 'destroy') req.socket.destroy();
        else req.socket.resetAndDestroy();
        return;
      }
      res.end('{}');
    });
    const http = caller();
    try {
      // A first call leaves a kept-alive connection, so the cut call goes out on a reused socket.
      assert.ok((await http.post(url, '{}')).ok);
      const result = await http.post(url, '{"cut":true}');
      assert.equal(result.ok === false && result.failure, 'network', cut);
      assert.equal(seen.filter((s) => s.body === '{"cut":true}').length, 1, `${cut}: the back end saw the call once`);
      // And the next call gets through on a fresh connection.
      assert.ok((await http.post(url, '{}')).ok);
    } finally {
      http.close();
      await stop(server);
    }
  }
});

test('against a back end that closes every connection after its answer, no call ever reaches it twice', async () => {
  const { server, url, seen } = await backEnd((req, res) => {
    res.end('{}');
    // Keep-alive was not refused in the answer: the node only learns of the close when it comes.
    req.socket.end();
  });
  const http = caller();
  try {
    const results = [];
    for (let i = 0; i < 100; i++) results.push(await http.post(url, JSON.stringify({ i })));
    const ids = seen.map((s) => s.callId);
    assert.equal(new Set(ids).size, ids.length, 'no call id twice');
    const answered = results.filter((r) => r.ok).length;
    assert.ok(answered > 0);
    assert.ok(seen.length >= answered && seen.length <= 100);
  } finally {
    http.close();
    await stop(server);
  }
});

test('an aborted call is abandoned at once: the back end sees the request go away, the slot is free', async () => {
  const { server, url, seen, aborted } = await backEnd(() => {}); // never answers
  const http = caller({ concurrency: 1 });
  try {
    const controller = new AbortController();
    const pending = http.post(url, '{}', controller.signal);
    await until(() => seen.length === 1);
    controller.abort();
    const result = await pending;
    assert.equal(result.ok === false && result.failure, 'aborted');
    assert.equal(http.pending, 0);
    await until(() => aborted() === 1);
    const already = await http.post(url, '{}', AbortSignal.abort());
    assert.equal(already.ok === false && already.failure, 'aborted');
    assert.equal(already.ok === false && already.seconds, undefined, 'a call whose client is gone is not sent');
  } finally {
    http.close();
    await stop(server);
  }
});

test('Hooks: past an address share a subscribe is limited and not sent; the connect share and the per-address connect cap say unavailable', async () => {
  const held: ServerResponse[] = [];
  const { server, url, seen } = await backEnd((_req, res) => held.push(res));
  const results: Array<[HookName, HookResult]> = [];
  const base = url.href.replace(/\/hook$/, '');
  const hooks = new Hooks(
    { nodeId: 'n1', connectHook: `${base}/connect`, subscribeHook: `${base}/subscribe`, publishHook: undefined, hookTimeout: 30, hookSecret: undefined, hookConcurrency: 64, maxPayload: 1024 },
    silentLogger(),
    (hook, result) => results.push([hook, result]),
  );
  const caller = { client: 'c', user: undefined, meta: undefined };
  try {
    const subscribes = Array.from({ length: MAX_HOOK_CALLS_PER_ADDRESS }, (_, i) => hooks.subscribe(caller, `ch${i}`, { address: '10.0.0.1' }));
    const ninth = await hooks.subscribe(caller, 'ch9', { address: '10.0.0.1' });
    assert.equal(ninth.kind, 'limited');
    const request = connectRequest(fakeRequest('/ws/v1'), 'c', '10.0.0.1');
    const connects = Array.from({ length: MAX_CONNECT_CALLS_PER_ADDRESS }, () => hooks.connect(request, { address: '10.0.0.1' }));
    const fifth = await hooks.connect(request, { address: '10.0.0.1' });
    assert.equal(fifth.kind, 'unavailable');
    await until(() => held.length === MAX_HOOK_CALLS_PER_ADDRESS + MAX_CONNECT_CALLS_PER_ADDRESS);
    assert.equal(seen.length, held.length, 'the refused calls were never sent');
    assert.deepEqual(results.filter(([, r]) => r === 'overloaded'), [['subscribe', 'overloaded'], ['connect', 'overloaded']]);
    for (const res of held) res.end('{}');
    for (const verdict of await Promise.all(subscribes)) assert.equal(verdict.kind, 'allow');
    for (const verdict of await Promise.all(connects)) assert.equal(verdict.kind, 'admit');
    assert.equal(hooks.pending, 0);
    assert.equal(hooks.addresses, 0);
  } finally {
    hooks.close();
    await stop(server);
  }
});

test('Hooks: data the publish hook substitutes over --max-payload is too_large, never allowed; within it is published', async () => {
  const { server, url } = await backEnd((_req, res, body) => {
    const size = (JSON.parse(body) as { data: { size: number } }).data.size;
    res.end(JSON.stringify({ data: 'x'.repeat(size) }));
  });
  const results: HookResult[] = [];
  const hooks = new Hooks(
    { nodeId: 'n1', connectHook: undefined, subscribeHook: undefined, publishHook: url.href, hookTimeout: 5, hookSecret: undefined, hookConcurrency: 4, maxPayload: 1000 },
    silentLogger(),
    (_hook, result) => results.push(result),
  );
  const caller = { client: 'c', user: undefined, meta: undefined };
  try {
    // A JSON string of n characters is n + 2 bytes.
    const fits = await hooks.publish(caller, 'a', '{"size":998}', { address: '10.0.0.1' });
    assert.equal(fits.kind, 'allow');
    const over = await hooks.publish(caller, 'a', '{"size":999}', { address: '10.0.0.1' });
    assert.equal(over.kind, 'too_large');
    assert.match(over.kind === 'too_large' ? over.reason : '', /1001 bytes, over --max-payload \(1000 bytes\)/);
    assert.deepEqual(results, ['allowed', 'error']);
  } finally {
    hooks.close();
    await stop(server);
  }
});

test('the connect hook hears every query key, __proto__, constructor, toString and hasOwnProperty included', () => {
  const request = connectRequest(fakeRequest('/ws/v1?__proto__=a&constructor=b&toString=c&hasOwnProperty=d&valueOf=e&room=1&room=2'), 'c', '10.0.0.1');
  const body = JSON.parse(JSON.stringify(request)) as { query: Record<string, unknown> };
  assert.deepEqual(Object.entries(body.query), [
    ['__proto__', 'a'],
    ['constructor', 'b'],
    ['toString', 'c'],
    ['hasOwnProperty', 'd'],
    ['valueOf', 'e'],
    ['room', '1'],
  ]);
});

/** The parts of an upgrade request that connectRequest reads. */
function fakeRequest(url: string): IncomingMessage {
  return { url, headers: {} } as IncomingMessage;
}
