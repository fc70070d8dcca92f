/**
 * The upgrade check (`POST /ws/v1/check`, src/transport/check.ts) against in-process nodes and a
 * real HTTP back end on an ephemeral port: it answers what the upgrade would get, from the same
 * gate (token, Origin, per-IP limit, connect hook), bounded as an upgrade is; the Node SDK turns
 * its answer into the `refusal` of `disconnected` and `closed` and stops on a terminal one. Also:
 * a back end that cannot be reached is told to clients as "the … hook failed", its address only
 * in the node's log.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, test } from 'node:test';
import { WebSocket } from 'ws';
import { createNode, type FanoutNode } from '../../src/app.js';
import { createConfig } from '../../src/config/load.js';
import { FanoutClient, type DisconnectedInfo, type UpgradeRefusal } from '../../client/index.js';
import { captureLogger, SECRET, sign } from '../helpers/security.js';
import { until } from '../../harness/wait.js';
import { closeNodes, httpUrl, startNode, wsUrl } from '../helpers/nodes.js';
import { closeAll, connect, type TestClient } from '../helpers/ws-client.js';

const FAST = { initial: 20, max: 50, factor: 2, jitter: 0 };

async function check(node: FanoutNode, query = '', headers: Record<string, string> = {}, method = 'POST'): Promise<{ status: number; body: Record<string, unknown> | undefined; headers: Headers }> {
  const res = await fetch(httpUrl(node, `/ws/v1/check${query}`), { method, headers });
  const text = await res.text();
  return { status: res.status, body: text === '' ? undefined : (JSON.parse(text) as Record<string, unknown>), headers: res.headers };
}

/**
 * A real back end for --connect-hook: `cookie: session=ok` admits as user "ok"; `session=hang` is
 * never answered (`held` counts those still open); else 401 with a reason. Records each call's body.
 */
async function startConnectBackend(): Promise<{ server: Server; url: string; calls: Array<Record<string, unknown>>; held: () => number }> {
  const calls: Array<Record<string, unknown>> = [];
  let held = 0;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { headers?: { cookie?: string } };
      calls.push(body as Record<string, unknown>);
      if (body.headers?.cookie === 'session=hang') {
        held++;
        res.once('close', () => held--);
        return;
      }
      const ok = body.headers?.cookie === 'session=ok';
      res.writeHead(ok ? 200 : 401, { 'content-type': 'application/json' });
      res.end(JSON.stringify(ok ? { user: 'ok' } : { reason: 'log in at http://app.example/login' }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/connect`, calls, held: () => held };
}

describe('the upgrade check', () => {
  const nodes: FanoutNode[] = [];
  const clients: TestClient[] = [];
  const servers: Server[] = [];
  after(async () => {
    closeAll(clients);
    await closeNodes(nodes);
    for (const s of servers) s.close();
  });

  test('with a JWT option: 401 from the token control without a token, 204 with one; GET is 405', async () => {
    const node = await startNode({ jwtSecret: SECRET });
    nodes.push(node);
    const missing = await check(node);
    assert.equal(missing.status, 401);
    assert.deepEqual(missing.body, { error: 'unauthorized', message: 'missing token', by: 'token' });
    assert.match(missing.headers.get('www-authenticate') ?? '', /^Bearer/);
    const token = await sign({ channels: ['chat:*'] }, { sub: 'u1' });
    const ok = await check(node, `?token=${token}`);
    assert.equal(ok.status, 204);
    const get = await check(node, '', {}, 'GET');
    assert.equal(get.status, 405);
    assert.equal(get.headers.get('allow'), 'POST');
    assert.equal((await fetch(httpUrl(node, '/ws/nothing/check'), { method: 'POST' })).status, 404, 'only a WebSocket endpoint has a check');
  });

  test('Origin as on the upgrade: a foreign page is refused before anything else; an allowed one may read the answer (CORS)', async () => {
    const node = await startNode({ allowedOrigins: 'http://app.example' });
    nodes.push(node);
    const foreign = await check(node, '', { origin: 'http://evil.example' });
    assert.equal(foreign.status, 403);
    assert.deepEqual(foreign.body, { error: 'forbidden', message: 'origin not allowed', by: 'origin' });
    assert.equal(foreign.headers.get('access-control-allow-origin'), null, 'a foreign page cannot read it');
    const allowed = await check(node, '', { origin: 'http://app.example' });
    assert.equal(allowed.status, 204);
    assert.equal(allowed.headers.get('access-control-allow-origin'), 'http://app.example');
    assert.equal(allowed.headers.get('access-control-allow-credentials'), 'true');
  });

  test('bounded as an upgrade: past --max-connections-per-ip it answers 429 from the limit control', async () => {
    const node = await startNode({ maxConnectionsPerIp: 1 });
    nodes.push(node);
    const open = await connect(wsUrl(node, '/ws/v1'));
    clients.push(open);
    await open.json((f) => f['type'] === 'connected');
    const limited = await check(node);
    assert.equal(limited.status, 429);
    assert.deepEqual(limited.body, { error: 'rate_limited', message: 'too many connections from this address', by: 'limit' });
    assert.equal(limited.headers.get('retry-after'), '5');
    open.close();
    await open.waitClose();
    // The node counts the socket out when its side of the close completes.
    await until(async () => (await check(node)).status === 204, { timeoutMs: 5000, what: 'the check to admit once the socket closed' });
  });

  test("the connect hook: its 401 and reason come back as the back end's refusal; the hook hears check:true and the endpoint's path", async () => {
    const backend = await startConnectBackend();
    servers.push(backend.server);
    const node = await startNode({ connectHook: backend.url });
    nodes.push(node);
    const refused = await check(node, '?room=lobby');
    assert.equal(refused.status, 401);
    assert.deepEqual(refused.body, { error: 'unauthorized', message: 'the back end refused the connection: log in at http://app.example/login', by: 'connect_hook' });
    assert.equal(backend.calls.at(-1)?.['check'], true);
    assert.equal(backend.calls.at(-1)?.['path'], '/ws/v1');
    assert.deepEqual(backend.calls.at(-1)?.['query'], { room: 'lobby' });
    assert.equal((await check(node, '', { cookie: 'session=ok' })).status, 204);
    // The real upgrade says the same in its body.
    const upgrade = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const ws = new WebSocket(wsUrl(node, '/ws/v1'));
      ws.on('error', () => {});
      ws.once('unexpected-response', (_req, res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      ws.once('open', () => reject(new Error('the upgrade was accepted')));
    });
    assert.equal(upgrade.status, 401);
    assert.match(upgrade.body, /the back end refused the connection: log in at/);
  });

  test("bounded as an upgrade: checks waiting on the connect hook take the address's share of connect calls, so an upgrade gets 503 at once", async () => {
    const backend = await startConnectBackend();
    servers.push(backend.server);
    const node = await startNode({ connectHook: backend.url, hookTimeout: 30 });
    nodes.push(node);
    const waiting = Array.from({ length: 4 }, () => new AbortController());
    const pending = waiting.map((c) => fetch(httpUrl(node, '/ws/v1/check'), { method: 'POST', headers: { cookie: 'session=hang' }, signal: c.signal }).catch(() => undefined));
    await until(() => backend.held() === 4, { timeoutMs: 5000, what: 'the back end to hold 4 checks' });
    const upgrade = await new Promise<number>((resolve, reject) => {
      const ws = new WebSocket(wsUrl(node, '/ws/v1'), { headers: { cookie: 'session=ok' } });
      ws.on('error', () => {});
      ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      ws.once('open', () => reject(new Error('admitted past the share')));
    });
    assert.equal(upgrade, 503, 'the checks hold the connect share of this address');
    assert.deepEqual((await check(node, '', { cookie: 'session=ok' })).body, { error: 'unavailable', message: 'the connect hook failed', by: 'connect_hook' });
    // Clients that go away free their calls: the node aborts them, and the share is free again.
    for (const c of waiting) c.abort();
    await Promise.all(pending);
    await until(() => backend.held() === 0, { timeoutMs: 5000, what: 'the node to abandon the calls' });
    await until(async () => (await check(node, '', { cookie: 'session=ok' })).status === 204, { timeoutMs: 5000, what: 'the share to be free' });
  });

  test('the Node SDK: a terminal refusal stops at once with the check’s answer in disconnected and closed', async () => {
    const backend = await startConnectBackend();
    servers.push(backend.server);
    const node = await startNode({ connectHook: backend.url });
    nodes.push(node);
    const client = new FanoutClient({ url: wsUrl(node, '/ws/v1'), backoff: FAST });
    const drops: DisconnectedInfo[] = [];
    client.on('disconnected', (info) => drops.push(info));
    const closed = new Promise<{ reason: string; refusal?: UpgradeRefusal }>((resolve) => client.on('closed', resolve));
    await assert.rejects(client.connect());
    const info = await closed;
    const expected = { status: 401, code: 'unauthorized', message: 'the back end refused the connection: log in at http://app.example/login', by: 'connect_hook' };
    assert.deepEqual(info.refusal, expected);
    assert.match(info.reason, /upgrade refused with HTTP 401: the back end refused the connection/);
    assert.equal(drops.length, 1, 'no retry after a 401');
    assert.equal(drops[0]!.reconnect, false);
    assert.equal(drops[0]!.status, 401);
    assert.deepEqual(drops[0]!.refusal, expected);
    assert.equal(client.state, 'closed');
  });

  test('the Node SDK keeps retrying a refusal that says "not now" (503), with the refusal on each drop', async () => {
    const node = await startNode({ connectHook: 'http://127.0.0.1:9/unreachable', hookTimeout: 1 });
    nodes.push(node);
    const client = new FanoutClient({ url: wsUrl(node, '/ws/v1'), backoff: FAST, maxRetries: 2 });
    const drops: DisconnectedInfo[] = [];
    client.on('disconnected', (info) => drops.push(info));
    const closed = new Promise<void>((resolve) => client.on('closed', () => resolve()));
    void client.connect();
    await closed;
    assert.equal(drops.length, 3, 'the first attempt and two retries');
    assert.deepEqual(drops[0]!.refusal, { status: 503, code: 'unavailable', message: 'the connect hook failed', by: 'connect_hook' });
    assert.equal(drops[0]!.reconnect, true);
  });
});

describe('a back end that cannot be reached', () => {
  let node: FanoutNode | undefined;
  const clients: TestClient[] = [];
  after(async () => {
    closeAll(clients);
    await node?.close();
  });

  test('clients hear "the publish hook failed" and "the subscribe hook failed"; only the log names the address', async () => {
    const capture = captureLogger();
    const unreachable = 'http://127.0.0.1:9';
    const config = createConfig({ port: 0, host: '127.0.0.1', heartbeat: 0, drainDelay: 0, subscribeHook: `${unreachable}/subscribe`, publishHook: `${unreachable}/publish`, anonymousSubscribe: 'open:*' });
    node = createNode({ config, logger: capture.logger });
    await node.start();
    const client = await connect(wsUrl(node, '/ws/v1'));
    clients.push(client);
    await client.json((f) => f['type'] === 'connected');
    client.sendJson({ type: 'subscribe', channel: 'closed:x', id: 1 });
    const sub = await client.json((f) => f['type'] === 'error' && f['id'] === 1);
    assert.equal(sub['code'], 'unavailable');
    assert.equal(sub['message'], 'cannot subscribe now: the subscribe hook failed; retry');
    client.sendJson({ type: 'subscribe', channel: 'open:x', id: 2 });
    await client.json((f) => f['type'] === 'subscribed' && f['id'] === 2);
    client.sendJson({ type: 'publish', channel: 'open:x', data: 'hi', id: 3 });
    const pub = await client.json((f) => f['type'] === 'error' && f['id'] === 3);
    assert.equal(pub['code'], 'unavailable');
    assert.equal(pub['message'], 'not published: the publish hook failed; retry');
    assert.ok(!client.messages.some((t) => t.includes('127.0.0.1') || t.includes('ECONNREFUSED')), 'no address reaches the client');
    const logged = capture.lines.filter((l) => l['msg'] === 'hook call failed');
    assert.ok(logged.some((l) => String(l['err']).includes('ECONNREFUSED') && l['url'] === `${unreachable}/publish`), 'the log keeps the detail');
  });
});
