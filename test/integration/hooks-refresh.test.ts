/**
 * Sessions the connect hook admits with `expires_at` (docs/auth.md), against a real HTTP back
 * end: --refresh-hook's 200 extends them (with its new patterns), its 403 closes with 4003, a
 * back end that does not answer is asked again until `expires_at` and the session then closes
 * with 4001; without --refresh-hook the session ends at `expires_at`.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { FanoutNode } from '../../src/app.js';
import { CloseCode } from '../../src/errors.js';
import { CHANNEL_PATH } from '../../src/protocol/frames.js';
import { request, subscribe } from '../helpers/channels.js';
import { closeNodes, startNode, wsUrl } from '../helpers/nodes.js';
import { closeAll, connect, type TestClient } from '../helpers/ws-client.js';

/** How long the back end's sessions last: short, so the tests see them end. */
const SESSION_SECONDS = 5;

interface RefreshCall {
  readonly client: string;
  readonly user: string;
  readonly meta: unknown;
}

let backend: Server;
let base: string;
const refreshCalls: RefreshCall[] = [];
const nodes: FanoutNode[] = [];
const clients: TestClient[] = [];

function body(req: IncomingMessage): Promise<Record<string, unknown>> {
  return new Promise((resolve) => {
    let text = '';
    req.on('data', (chunk: Buffer) => (text += chunk.toString()));
    req.on('end', () => resolve(JSON.parse(text) as Record<string, unknown>));
  });
}

before(async () => {
  // connect: the user is the `mode` query parameter, the session lasts SESSION_SECONDS.
  // refresh: `extend` gets a minute more and the `extra` channel, `refuse` a 403, `hang` no answer.
  backend = createServer((req, res) => {
    void body(req).then((call) => {
      if (req.url === '/connect') {
        const mode = (call['query'] as Record<string, string>)['mode'] ?? 'extend';
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ user: mode, channels: ['room'], meta: { mode }, expires_at: Math.floor(Date.now() / 1000) + SESSION_SECONDS }));
        return;
      }
      refreshCalls.push({ client: String(call['client']), user: String(call['user']), meta: call['meta'] });
      if (call['user'] === 'refuse') {
        res.writeHead(403, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ reason: 'logged out' }));
      } else if (call['user'] === 'extend') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ expires_at: Math.floor(Date.now() / 1000) + 60, channels: ['room', 'extra'] }));
      }
      // hang: never answered (the node's --hook-timeout gives up).
    });
  });
  await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(backend.address() as AddressInfo).port}`;
});

after(async () => {
  closeAll(clients);
  await closeNodes(nodes);
  backend.closeAllConnections();
  await new Promise((resolve) => backend.close(resolve));
});

async function session(node: FanoutNode, mode: string): Promise<{ client: TestClient; id: string; expires: number }> {
  const client = await connect(`${wsUrl(node, CHANNEL_PATH)}?mode=${mode}`);
  clients.push(client);
  const hello = await client.json<{ client: string; expires: number }>((f) => f['type'] === 'connected');
  return { client, id: hello.client, expires: hello.expires };
}

describe('--refresh-hook', () => {
  let node: FanoutNode;
  before(async () => {
    node = await startNode({ connectHook: `${base}/connect`, refreshHook: `${base}/refresh`, hookTimeout: 0.3 });
    nodes.push(node);
  });

  test('200 extends the session with its new patterns; 403 closes with 4003; no answer is retried until expires_at, then 4001', async () => {
    const extend = await session(node, 'extend');
    const refuse = await session(node, 'refuse');
    const hang = await session(node, 'hang');
    assert.equal(typeof extend.expires, 'number');
    await subscribe(extend.client, 'room');
    const before = await request(extend.client, { type: 'subscribe', channel: 'extra' });
    assert.equal(before['code'], 'forbidden');

    assert.equal(await refuse.client.waitClose(8000), CloseCode.REFUSED);
    assert.match(refuse.client.closeReason, /logged out/);
    assert.equal(await hang.client.waitClose(8000), CloseCode.TOKEN_EXPIRED);

    // The hanging session was asked more than once (each try timed out) before it ended.
    assert.ok(refreshCalls.filter((c) => c.client === hang.id).length >= 2, JSON.stringify(refreshCalls));
    const asked = refreshCalls.find((c) => c.client === extend.id);
    assert.deepEqual(asked, { client: extend.id, user: 'extend', meta: { mode: 'extend' } });
    // Past its first expires_at the extended session is open, and its new patterns apply.
    assert.equal(extend.client.closeCode, undefined);
    assert.equal((await subscribe(extend.client, 'extra')).type, 'subscribed');
  });
});

describe('expires_at without --refresh-hook', () => {
  test('the session ends at expires_at with 4001', async () => {
    const node = await startNode({ connectHook: `${base}/connect` });
    nodes.push(node);
    const { client, expires } = await session(node, 'extend');
    assert.ok(expires * 1000 > Date.now() - 1000);
    assert.equal(await client.waitClose(8000), CloseCode.TOKEN_EXPIRED);
  });
});
