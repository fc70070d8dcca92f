/**
 * Idempotent publish (issue 27 part 3, docs/protocol.md "Idempotent publish") as a user sees it,
 * with real nodes, sockets and HTTP: two nodes on Redis answer a repeated `idempotency_key` from a
 * socket and from `POST /api/publish` (field or `Idempotency-Key` header) with the first offset
 * and `duplicate`, and deliver the message once; bad keys get the documented `bad_request`. Then
 * the SDK through a TCP proxy whose connection is cut while a publish's ack is on its way back:
 * the keyed publish is sent again after the reconnect and stored once, the unkeyed one rejects
 * `disconnected` as before. Every store's own atomicity is in the store conformance suite.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FanoutClient, FanoutClientError } from '../../client/index.js';
import { REDIS_URL } from '../helpers/brokers.js';
import { connectChannels, request, subscribe, waitMessages, messagesOf } from '../helpers/channels.js';
import { closeNodes, httpUrl, startNode, uniquePrefix, waitNodesReady } from '../helpers/nodes.js';
import { closeAll } from '../helpers/ws-client.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';
import { FAST } from '../helpers/scripted-peer.js';
import { sleep } from '../../harness/wait.js';

const API_KEY = 'idem-test-key';

async function apiPublish(port: number, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`http://127.0.0.1:${port}/api/publish`, {
    method: 'POST',
    headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

test('two nodes on Redis: a repeated key, from a socket or the HTTP API, on either node, is acked duplicate with the first offset and delivered once', async (t) => {
  const busPrefix = uniquePrefix('idem');
  const config = { bus: REDIS_URL, busPrefix, apiKey: API_KEY, namespaces: [{ pattern: 'orders:*', idempotencyWindow: 60 }] };
  const a = await startNode({ ...config, nodeId: 'a' });
  const b = await startNode({ ...config, nodeId: 'b' });
  t.after(() => closeNodes([a, b]));
  await waitNodesReady([a, b]);
  const watcher = await connectChannels(b);
  const pa = await connectChannels(a);
  const pb = await connectChannels(b);
  t.after(() => closeAll([watcher, pa, pb]));
  await subscribe(watcher, 'orders:1');

  const first = await request(pa, { type: 'publish', channel: 'orders:1', data: { n: 1 }, idempotency_key: 'order-1' });
  assert.equal(first.type, 'ack');
  assert.equal(first.duplicate, undefined);
  const again = await request(pb, { type: 'publish', channel: 'orders:1', data: { n: 1 }, idempotency_key: 'order-1' });
  assert.deepEqual(again, { type: 'ack', id: again.id, offset: first.offset, duplicate: true }, 'the other node: the first offset, duplicate');

  const http = await apiPublish(b.address.port, { channel: 'orders:1', data: { n: 1 }, idempotency_key: 'order-1' });
  assert.deepEqual(http, { status: 200, body: { offset: first.offset, duplicate: true } }, 'the API: 200 with the first offset and duplicate');
  const byHeader = await apiPublish(a.address.port, { channel: 'orders:1', data: { n: 2 } }, { 'idempotency-key': 'order-2' });
  assert.deepEqual(byHeader.body, { offset: (first.offset as number) + 1 });
  const headerAgain = await apiPublish(b.address.port, { channel: 'orders:1', data: { n: 2 } }, { 'idempotency-key': 'order-2' });
  assert.deepEqual(headerAgain.body, { offset: (first.offset as number) + 1, duplicate: true }, 'the header is the same key as the field');
  const socketAfterHeader = await request(pa, { type: 'publish', channel: 'orders:1', data: { n: 2 }, idempotency_key: 'order-2' });
  assert.equal(socketAfterHeader.duplicate, true, 'a key is the channel\'s, whichever way it came');

  await request(pa, { type: 'publish', channel: 'orders:1', data: { n: 3 } });
  await waitMessages(watcher, 'orders:1', 3);
  await sleep(200);
  assert.deepEqual(messagesOf(watcher, 'orders:1').map((m) => m.data), [{ n: 1 }, { n: 2 }, { n: 3 }], 'each key delivered once');

  // Bad keys: the documented bad_request, echoing the id; 400 from the API; nothing stored.
  for (const key of ['', 'has space', 'x'.repeat(129), 42, 'é']) {
    const refused = await request(pa, { type: 'publish', channel: 'orders:1', data: 1, idempotency_key: key });
    assert.equal(refused.type, 'error', JSON.stringify(key));
    assert.equal(refused.code, 'bad_request');
    assert.match(String(refused.message), /"idempotency_key" must be 1–128 printable ASCII characters, no spaces/);
  }
  const badField = await apiPublish(a.address.port, { channel: 'orders:1', data: 1, idempotency_key: 'has space' });
  assert.equal(badField.status, 400);
  const badHeader = await apiPublish(a.address.port, { channel: 'orders:1', data: 1 }, { 'idempotency-key': 'x'.repeat(129) });
  assert.deepEqual([badHeader.status, badHeader.body.error], [400, 'bad_request']);
  const differ = await apiPublish(a.address.port, { channel: 'orders:1', data: 1, idempotency_key: 'k1' }, { 'idempotency-key': 'k2' });
  assert.deepEqual([differ.status, differ.body.message], [400, 'the Idempotency-Key header and "idempotency_key" differ; give one']);
  const history = await fetch(httpUrl(a, '/api/channels/orders:1/history'), { headers: { authorization: `Bearer ${API_KEY}` } });
  assert.deepEqual(((await history.json()) as { messages: Array<{ data: unknown }> }).messages.map((m) => m.data), [{ n: 1 }, { n: 2 }, { n: 3 }]);
});

test('the SDK: a keyed publish whose ack was lost with the connection is sent again after the reconnect and stored once; an unkeyed one rejects disconnected', async (t) => {
  const node = await startNode({ bus: REDIS_URL, busPrefix: uniquePrefix('idem-sdk') });
  t.after(() => closeNodes([node]));
  await waitNodesReady([node]);
  const watcher = await connectChannels(node);
  t.after(() => closeAll([watcher]));
  await subscribe(watcher, 'room');
  const proxy = await TcpProxy.start(node.address.port);
  t.after(() => proxy.close());
  const client = new FanoutClient({ url: `ws://127.0.0.1:${proxy.port}/ws/v1`, backoff: FAST, requestTimeout: 30_000 });
  t.after(() => client.close());
  await client.connect();

  // Every chunk takes 1.5 s each way: the node stores the publishes, and the link is cut while
  // their acks are still on their way back.
  proxy.latency(1500);
  const keyed = client.publish('room', { n: 1 }, { idempotencyKey: 'sdk-1' });
  const unkeyed = client.publish('room', { n: 2 });
  unkeyed.catch(() => {});
  await waitMessages(watcher, 'room', 2, 20_000);
  const stored = messagesOf(watcher, 'room');
  proxy.cut();
  proxy.latency(0);
  proxy.restore();

  const ack = await keyed;
  assert.deepEqual(ack, { offset: stored[0]!.offset, duplicate: true }, 'sent again after the reconnect: the first offset, nothing stored twice');
  await assert.rejects(unkeyed, (err: unknown) => err instanceof FanoutClientError && err.code === 'disconnected');
  const fresh = await client.publish('room', { n: 3 }, { idempotencyKey: 'sdk-3' });
  assert.equal(fresh.duplicate, undefined);
  await waitMessages(watcher, 'room', 3, 10_000);
  await sleep(200);
  assert.deepEqual(messagesOf(watcher, 'room').map((m) => m.data), [{ n: 1 }, { n: 2 }, { n: 3 }], 'each once');
  await assert.rejects(client.publish('room', 1, { idempotencyKey: 'has space' }), (err: unknown) => err instanceof FanoutClientError && err.code === 'bad_request');
});
