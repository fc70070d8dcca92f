/**
 * Namespaces (issue 27 part 2) as clients see them: two nodes on one broker, real WebSocket
 * clients, a real HTTP back end for the hooks and the HTTP API. Each option of a namespace
 * changes what a client of its channels gets, and nothing of the channels of other namespaces.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { FanoutNode } from '../../src/app.js';
import { closeNodes, httpUrl, startNodes, wsUrl } from '../helpers/nodes.js';
import { closeAll, connect, type TestClient } from '../helpers/ws-client.js';

const API_KEY = 'ns-api-key';

type Frame = Record<string, unknown>;

/** A back end whose hooks answer 403 and record the channels they were asked about. */
async function startBackend(): Promise<{ server: Server; url: (path: string) => string; asked: string[] }> {
  const asked: string[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', () => {
      asked.push(`${req.url} ${(JSON.parse(body) as { channel: string }).channel}`);
      res.writeHead(403).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { server, url: (path) => `http://127.0.0.1:${port}${path}`, asked };
}

describe('namespaces on two nodes', () => {
  let nodes: FanoutNode[];
  let backend: Awaited<ReturnType<typeof startBackend>>;
  const clients: TestClient[] = [];

  before(async () => {
    backend = await startBackend();
    nodes = await startNodes(2, {
      apiKey: API_KEY,
      historySize: 10,
      publishHook: backend.url('/global-publish'),
      namespaces: [
        { pattern: 'chat:*', presence: true, historySize: 50 },
        { pattern: 'quiet:*', presence: true, joinLeave: false },
        { pattern: 'notify:*', clientPublish: false, publishHook: false },
        { pattern: 'ticker:*', recovery: false, publishHook: false },
        { pattern: 'guarded:*', subscribeHook: backend.url('/guard') },
        { pattern: 'open:*', publishHook: false },
      ],
    });
  });

  after(async () => {
    closeAll(clients);
    await closeNodes(nodes);
    await new Promise((resolve) => backend.server.close(resolve));
  });

  async function client(node: FanoutNode): Promise<TestClient> {
    const c = await connect(wsUrl(node, '/ws/v1'));
    clients.push(c);
    await c.json((f) => f['type'] === 'connected');
    return c;
  }

  async function subscribed(c: TestClient, channel: string, id: number, extra: Frame = {}): Promise<Frame> {
    c.sendJson({ type: 'subscribe', channel, id, ...extra });
    return c.json((f) => f['id'] === id && (f['type'] === 'subscribed' || f['type'] === 'error'));
  }

  async function reply(c: TestClient, frame: Frame): Promise<Frame> {
    c.sendJson(frame);
    return c.json((f) => f['id'] === frame['id'] && f['type'] !== 'message');
  }

  test('presence with join/leave, presence without them, and none where no namespace says', async () => {
    const [a, b] = [await client(nodes[0]!), await client(nodes[1]!)];
    assert.equal((await subscribed(a, 'chat:1', 1))['type'], 'subscribed');
    assert.equal((await subscribed(a, 'quiet:1', 2))['type'], 'subscribed');
    await subscribed(b, 'quiet:1', 3);
    await subscribed(b, 'chat:1', 4);
    const join = await a.json((f) => f['type'] === 'join' && f['channel'] === 'chat:1');
    assert.ok(join['client'], 'chat:* sends join frames');
    // quiet:* keeps presence lists but sends no join frames: b's join on chat:1 came after its quiet:1 one.
    assert.equal(a.messages.some((m) => (JSON.parse(m) as Frame)['type'] === 'join' && (JSON.parse(m) as Frame)['channel'] === 'quiet:1'), false);
    const list = await reply(a, { type: 'presence', channel: 'quiet:1', id: 5 });
    assert.equal((list['clients'] as unknown[]).length, 2, 'quiet:* has presence lists');
    const none = await reply(a, { type: 'presence', channel: 'misc', id: 6 });
    assert.equal(none['code'], 'not_found');
  });

  test('client-publish: false refuses client publishes with forbidden; the HTTP API still publishes', async () => {
    const c = await client(nodes[0]!);
    await subscribed(c, 'notify:u1', 1);
    const refused = await reply(c, { type: 'publish', channel: 'notify:u1', data: { x: 1 }, id: 2 });
    assert.equal(refused['type'], 'error');
    assert.equal(refused['code'], 'forbidden');
    assert.match(String(refused['message']), /client-publish: false/);
    const res = await fetch(httpUrl(nodes[1]!, '/api/publish'), {
      method: 'POST',
      headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ channel: 'notify:u1', data: { from: 'backend' } }),
    });
    assert.equal(res.status, 200);
    const message = await c.json((f) => f['type'] === 'message' && f['channel'] === 'notify:u1');
    assert.deepEqual(message['data'], { from: 'backend' });
  });

  test('recovery: false answers a since with recovered:false and no messages; elsewhere it recovers', async () => {
    const c = await client(nodes[0]!);
    for (const channel of ['ticker:eur', 'open:1']) {
      const first = await subscribed(c, channel, 1);
      for (let i = 0; i < 3; i++) assert.equal((await reply(c, { type: 'publish', channel, data: i, id: 10 + i }))['type'], 'ack');
      const since = { offset: first['offset'], epoch: first['epoch'] };
      const other = await client(nodes[1]!);
      const again = await subscribed(other, channel, 2, { since });
      const recovered = other.messages.filter((m) => (JSON.parse(m) as Frame)['type'] === 'message').length;
      if (channel === 'ticker:eur') {
        assert.equal(again['recovered'], false);
        assert.equal(recovered, 0);
      } else {
        assert.equal(again['recovered'], true);
        assert.equal(recovered, 3);
      }
      c.sendJson({ type: 'unsubscribe', channel, id: 3 });
      await c.json((f) => f['type'] === 'unsubscribed' && f['channel'] === channel);
      c.messages.length = 0;
    }
  });

  test("a namespace's own hooks are asked, and false skips the global one", async () => {
    const c = await client(nodes[0]!);
    // guarded:* asks its own subscribe hook (no global one is set), which forbids.
    const refused = await subscribed(c, 'guarded:1', 1);
    assert.equal(refused['code'], 'forbidden');
    assert.ok(backend.asked.includes('/guard guarded:1'));
    // Outside any namespace the global publish hook decides (and forbids); open:* skips it.
    await subscribed(c, 'misc:1', 2);
    assert.equal((await reply(c, { type: 'publish', channel: 'misc:1', data: 1, id: 3 }))['code'], 'forbidden');
    assert.ok(backend.asked.includes('/global-publish misc:1'));
    await subscribed(c, 'open:2', 4);
    assert.equal((await reply(c, { type: 'publish', channel: 'open:2', data: 1, id: 5 }))['type'], 'ack');
    assert.ok(!backend.asked.some((a) => a.endsWith(' open:2')), 'open:* publishes without asking the back end');
  });

  test('GET /api/channels/C answers the namespace that applies, with its options', async () => {
    const get = async (channel: string): Promise<{ status: number; body: Frame }> => {
      const res = await fetch(httpUrl(nodes[0]!, `/api/channels/${encodeURIComponent(channel)}`), { headers: { authorization: `Bearer ${API_KEY}` } });
      return { status: res.status, body: (await res.json()) as Frame };
    };
    const chat = await get('chat:lobby');
    assert.equal(chat.status, 200);
    // The namespace part of the answer (the counts, offset and epoch beside it are auth.md's).
    const { channel: name, namespace, options } = chat.body;
    assert.deepEqual({ channel: name, namespace, options }, {
      channel: 'chat:lobby',
      namespace: 'chat:*',
      options: {
        'history-size': 50,
        'history-ttl': 300,
        presence: true,
        'join-leave': true,
        recovery: true,
        'anonymous-subscribe': true,
        'anonymous-publish': true,
        'client-publish': true,
        'subscribe-hook': false,
        'publish-hook': backend.url('/global-publish'),
        delta: false,
        'idempotency-window': 300,
        cache: false,
      },
    });
    const misc = await get('misc');
    assert.equal(misc.body['namespace'], null);
    assert.equal((misc.body['options'] as Frame)['history-size'], 10, 'no namespace: the top-level values');
    assert.equal(((await get('notify:x')).body['options'] as Frame)['client-publish'], false);
    const noKey = await fetch(httpUrl(nodes[0]!, '/api/channels/chat:lobby'));
    assert.equal(noKey.status, 401);
    assert.equal((await get('bad channel')).status, 400);
  });
});
