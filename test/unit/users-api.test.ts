/**
 * The server API on users on in-process nodes sharing one memory broker (bus and stores): what
 * the end-to-end test (integration/users-api-cluster.test.ts) leaves out. A node started after a
 * revocation reads it from the store; the channels listing pages across nodes with its cursor; a
 * server-side subscribe leaves alone a connection already subscribed or at --max-subscriptions; a
 * node that left says bye, so calls stop waiting for it; one that went silent is waited for only
 * until the 2 s deadline.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { MemoryBroker, MemoryBus } from '../../src/brokers/memory/bus.js';
import { encodeEnvelope, EnvelopeKind } from '../../src/protocol/envelope.js';
import type { FanoutNode } from '../../src/app.js';
import { CHANNEL_PATH } from '../../src/protocol/frames.js';
import { connectChannels, subscribe } from '../helpers/channels.js';
import { closeNodes, httpUrl, startNode, waitNodesReady, wsUrl } from '../helpers/nodes.js';
import { SECRET, sign } from '../helpers/security.js';
import { closeAll, connect, refusedStatus, type TestClient } from '../helpers/ws-client.js';
import { until } from '../../harness/wait.js';
import { CALL_DEADLINE_MS } from '../../src/node/cluster-calls.js';

const API_KEY = 'unit-api-key';
const nodes: FanoutNode[] = [];
const clients: TestClient[] = [];

after(async () => {
  closeAll(clients);
  await closeNodes(nodes);
});

async function cluster(count: number, extra: Record<string, unknown> = {}): Promise<{ broker: MemoryBroker; started: FanoutNode[] }> {
  const broker = new MemoryBroker();
  const started: FanoutNode[] = [];
  for (let i = 1; i <= count; i++) started.push(await startNode({ nodeId: `u${nodes.length + i}`, apiKey: API_KEY, ...extra }, broker));
  nodes.push(...started);
  return { broker, started };
}

async function api(node: FanoutNode, method: string, path: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(httpUrl(node, path), { method, headers: { authorization: `Bearer ${API_KEY}` }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

test('a node started after a revocation reads it from the store and refuses the token', async () => {
  const { broker, started } = await cluster(1, { jwtSecret: SECRET });
  const token = await sign({ jti: 'old-leak' }, { sub: 'ivy' });
  const res = await api(started[0]!, 'POST', '/api/tokens/revoke', { jti: 'old-leak' });
  assert.equal(res.status, 200);
  const late = await startNode({ nodeId: 'u-late', apiKey: API_KEY, jwtSecret: SECRET }, broker);
  nodes.push(late);
  assert.equal(await refusedStatus(`${wsUrl(late, CHANNEL_PATH)}?token=${token}`), 401);
  const fine = await connect(`${wsUrl(late, CHANNEL_PATH)}?token=${await sign({ jti: 'other' }, { sub: 'ivy' })}`);
  clients.push(fine);
});

test('the channels listing pages across nodes with its cursor, and counts every node', async () => {
  const { started } = await cluster(2);
  const [a, b] = await Promise.all(started.map((n) => connectChannels(n)));
  clients.push(a!, b!);
  for (const ch of ['pg:1', 'pg:3']) await subscribe(a!, ch);
  for (const ch of ['pg:2', 'pg:3']) await subscribe(b!, ch);
  const seen: Array<{ channel: string; subscribers: number }> = [];
  let cursor: string | null = '';
  let pages = 0;
  while (cursor !== null) {
    const page = await api(started[0]!, 'GET', `/api/channels?prefix=pg:&limit=1${cursor ? `&cursor=${cursor}` : ''}`);
    assert.equal(page.status, 200);
    assert.equal(page.body.nodes, 2);
    seen.push(...(page.body.channels as typeof seen));
    cursor = page.body.cursor as string | null;
    assert.ok(++pages <= 3, 'one channel per page');
  }
  assert.deepEqual(seen, [
    { channel: 'pg:1', subscribers: 1 },
    { channel: 'pg:2', subscribers: 1 },
    { channel: 'pg:3', subscribers: 2 },
  ]);
});

test('a server-side subscribe leaves a connection already subscribed or at --max-subscriptions alone', async () => {
  const { started } = await cluster(1, { jwtSecret: SECRET, maxSubscriptions: 1 });
  const token = await sign({ channels: ['s:*'] }, { sub: 'jack' });
  const full = await connect(`${wsUrl(started[0]!, CHANNEL_PATH)}?token=${token}`);
  clients.push(full);
  await full.json((f) => f.type === 'connected');
  await subscribe(full, 's:1');
  assert.equal((await api(started[0]!, 'POST', '/api/users/jack/subscribe', { channel: 's:1' })).body.touched, 0);
  assert.equal((await api(started[0]!, 'POST', '/api/users/jack/subscribe', { channel: 's:2' })).body.touched, 0);
  assert.equal((await api(started[0]!, 'POST', '/api/users/jack/unsubscribe', { channel: 's:1' })).body.touched, 1);
  assert.equal((await api(started[0]!, 'POST', '/api/users/jack/subscribe', { channel: 'forbidden:x' })).body.touched, 1, 'the back end may subscribe to any channel');
});

test('a node that stops says bye: calls wait only for the nodes left', async () => {
  const { started } = await cluster(2);
  const [a, b] = started;
  assert.equal((await api(a!, 'GET', '/api/users/nobody/connections')).body.expected, 2);
  await b!.close();
  const res = await api(a!, 'GET', '/api/users/nobody/connections');
  assert.deepEqual([res.body.nodes, res.body.expected], [1, 1]);
});

test('a node that said hello and went silent is waited for until the deadline; the answer says who answered', async () => {
  const { broker, started } = await cluster(1);
  // Ready: the control topic is subscribed, so the ghost's hello is heard.
  await waitNodesReady(started);
  const ghost = new MemoryBus(broker);
  await ghost.connect();
  const prefix = started[0]!.config.busPrefix;
  await ghost.publish(`${prefix}:control`, encodeEnvelope(EnvelopeKind.CLUSTER, 'ghost', Buffer.from('{"t":"hello","answer":true}')));
  await until(async () => (await api(started[0]!, 'GET', '/api/users/x/connections')).body.expected === 2, { what: 'the node to know the ghost' });
  const asked = performance.now();
  const res = await api(started[0]!, 'GET', '/api/users/x/connections');
  assert.deepEqual([res.status, res.body.nodes, res.body.expected], [200, 1, 2]);
  assert.ok(performance.now() - asked >= CALL_DEADLINE_MS - 50, 'answered at the deadline, not before');
  await ghost.close();
});

test('the API is off without --api-key, and refuses a wrong key', async () => {
  const off = await startNode({ nodeId: 'u-off' });
  nodes.push(off);
  assert.equal((await fetch(httpUrl(off, '/api/users/x/connections'))).status, 404);
  const { started } = await cluster(1);
  const wrong = await fetch(httpUrl(started[0]!, '/api/users/x/disconnect'), { method: 'POST', headers: { authorization: 'Bearer nope' } });
  assert.equal(wrong.status, 401);
});
