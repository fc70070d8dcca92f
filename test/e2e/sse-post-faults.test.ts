/**
 * An SSE session's POSTs when one fails (docs/protocol.md, "SSE transport"; docs/client.md,
 * "Transports"): two `fanout serve` processes on Redis behind HAProxy from the generated config
 * (its SSE backend balances leastconn, so the SDK's POSTs go to the node that does not hold its
 * stream), the SDK in Node on SSE, a WebSocket subscriber beside it. A POST that fails (the owner
 * stopped past the relay's 2 s deadline: 503; the node holding the POST killed: a 502 from
 * HAProxy, or the request cut)
 * is sent again with the same `seq`; the message reaches the subscriber exactly once and the
 * publish is acked, as over a WebSocket. An owner away for longer than the SDK resends ends the
 * socket (1006): the SDK reconnects and an idempotent publish still arrives once. HAProxy's stats count the failed answers, so each test
 * shows that its failure really happened.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, test } from 'node:test';
import { Redis } from 'ioredis';
import { FanoutClient } from '../../client/index.js';
import { forkFanoutServe, waitReadyPort, type ServerProcess } from '../../harness/fanout-process.js';
import { startHaproxy, type RunningHaproxy } from '../../harness/haproxy.js';
import { freePort } from '../../harness/ports.js';
import { sleep, until } from '../../harness/wait.js';
import { RELAY_DEADLINE_MS } from '../../src/node/sse-relay.js';
import { REDIS_URL } from '../helpers/brokers.js';
import { uniquePrefix } from '../helpers/nodes.js';
import { scrapeUntil } from '../helpers/metrics.js';
import { collect, type Received } from '../helpers/sdk.js';

const busPrefix = uniquePrefix('e2e-ssepost');
let nodes: ServerProcess[] = [];
let proxy: RunningHaproxy;
let statsPort: number;
/** The clients of the running test (closed after it, so that its stream does not count in the next one's leastconn). */
let clients: FanoutClient[] = [];

before(async () => {
  nodes = await Promise.all([1, 2].map((i) => forkFanoutServe(['--bus', REDIS_URL, '--bus-prefix', busPrefix, '--node-id', `ssepost${i}`])));
  await Promise.all(nodes.map((n) => waitReadyPort(n.port)));
  statsPort = await freePort();
  proxy = await startHaproxy(nodes.map((n) => n.port), { statsPort });
});

afterEach(() => {
  for (const client of clients) client.close();
  clients = [];
});

after(async () => {
  for (const node of nodes) if (node.child.exitCode === null && node.child.signalCode === null) process.kill(node.pid, 'SIGCONT');
  await proxy?.stop();
  await Promise.all(nodes.map((n) => n.stop()));
  const admin = new Redis(REDIS_URL);
  const keys = await admin.keys(`${busPrefix}:*`);
  if (keys.length) await admin.del(...keys);
  await admin.quit();
});

/** A counter of HAProxy's stats CSV: `column` of the row of proxy `px`, server `sv`. */
async function haproxyStat(px: string, sv: string, column: string): Promise<number> {
  const csv = await (await fetch(`http://127.0.0.1:${statsPort}/;csv`)).text();
  const [head, ...rows] = csv.split('\n');
  const columns = head!.replace(/^# /, '').split(',');
  const row = rows.find((r) => r.startsWith(`${px},${sv},`));
  assert.ok(row, `a stats row ${px}/${sv}`);
  return Number(row.split(',')[columns.indexOf(column)]);
}

/** 5xx answers HAProxy sent to clients so far. */
const proxy5xx = (): Promise<number> => haproxyStat('fanout', 'FRONTEND', 'hrsp_5xx');
/** Responses from `node` that failed in HAProxy's SSE backend (cut, or none: the client got a 502 or a cut connection). */
const failedOn = (node: ServerProcess): Promise<number> => haproxyStat('fanout_sse', `node${nodes.indexOf(node) + 1}`, 'eresp');

/** The SDK on SSE through HAProxy: its session's node (the owner) and the other node. */
async function sseClient(): Promise<{ client: FanoutClient; owner: ServerProcess; other: ServerProcess }> {
  // Both nodes up in HAProxy's eyes (a node stopped by an earlier test is back): the stream on one, the POSTs on the other.
  await proxy.untilServers(['fanout_ws/node1', 'fanout_ws/node2'], 'UP');
  const client = new FanoutClient({ url: `ws://127.0.0.1:${proxy.port}/ws/v1`, transports: ['sse'] });
  clients.push(client);
  await client.connect();
  assert.equal(client.transport, 'sse');
  const owner = nodes.find((n) => n.id === client.nodeId);
  assert.ok(owner, `the session's node ${client.nodeId} is one of ours`);
  return { client, owner, other: nodes.find((n) => n !== owner)! };
}

/** A WebSocket client of `node` subscribed to `channel`, and what it receives. */
async function subscriber(node: ServerProcess, channel: string): Promise<Received[]> {
  const client = new FanoutClient({ url: `ws://127.0.0.1:${node.port}/ws/v1`, transports: ['websocket'] });
  clients.push(client);
  await client.connect();
  const sub = client.subscribe(channel);
  const got = collect(sub);
  await until(() => sub.state === 'subscribed', { what: 'the subscription' });
  return got;
}

/** Publishes `last` as a marker and waits for it: what `got` holds then is everything that came before it. */
async function through(client: FanoutClient, channel: string, got: Received[], last: string): Promise<unknown[]> {
  await client.publish(channel, last);
  await until(() => got.some((m) => m.data === last), { timeoutMs: 15_000, what: `"${last}" at the subscriber` });
  return got.map((m) => m.data);
}

test('the owner stops past the relay deadline (503): the POST is sent again, the message arrives once, the publish is acked', async () => {
  const { client, owner, other } = await sseClient();
  const got = await subscriber(other, 'stopped');
  await client.publish('stopped', 'before');
  const failedBefore = await proxy5xx();
  // The owner cannot answer: the other node takes the POST, relays it and answers 503 after 2 s.
  process.kill(owner.pid, 'SIGSTOP');
  const publish = client.publish('stopped', 'while the owner is stopped');
  try {
    await sleep(RELAY_DEADLINE_MS + 1000);
  } finally {
    process.kill(owner.pid, 'SIGCONT');
  }
  const ack = await publish;
  assert.ok(ack.offset >= 2, 'the publish was acked');
  assert.ok((await proxy5xx()) > failedBefore, 'a POST was answered 5xx while the owner was stopped');
  assert.deepEqual(await through(client, 'stopped', got, 'after'), ['before', 'while the owner is stopped', 'after'], 'each message once, in order');
});

test('the owner stays away past the resend time: the socket ends with 1006, the SDK reconnects to the other node, an idempotent publish arrives once', async () => {
  const { client, owner, other } = await sseClient();
  const got = await subscriber(other, 'away');
  await client.publish('away', 'before');
  const drops: number[] = [];
  client.on('disconnected', ({ code }) => drops.push(code));
  process.kill(owner.pid, 'SIGSTOP');
  try {
    // Its POSTs queue on the bus for the stopped owner; after RESEND_FOR_MS the SDK gives up on the session.
    const ack = await client.publish('away', 'while the owner is away', { idempotencyKey: 'away-1' });
    assert.ok(ack.offset >= 2, 'acked after the reconnect');
    assert.deepEqual(drops, [1006]);
    assert.equal(client.nodeId, other.id, 'a new session on the node that answers');
  } finally {
    process.kill(owner.pid, 'SIGCONT');
  }
  // The owner runs what waited for it on the bus, in order: the first POST (the same publish,
  // a duplicate by its key), its resends (remembered), then the SDK's DELETE, which ends the session.
  await scrapeUntil(`http://127.0.0.1:${owner.port}`, (m) => m.value('fanout_connections', { transport: 'sse' }) === 0, 10_000);
  assert.deepEqual(await through(client, 'away', got, 'after'), ['before', 'while the owner is away', 'after'], 'each message once, in order');
});

test('the node holding a POST is killed (HAProxy answers 502 or cuts the request): the POST is sent again to the other node, the message arrives once', async () => {
  const { client, owner, other } = await sseClient();
  const got = await subscriber(owner, 'killed');
  await client.publish('killed', 'before');
  const failedBefore = await failedOn(other);
  // Stopped, the other node still looks up to HAProxy for a second: the POST goes there and waits.
  process.kill(other.pid, 'SIGSTOP');
  const publish = client.publish('killed', 'while a node dies');
  await sleep(500);
  await other.stop('SIGKILL');
  const ack = await publish;
  assert.ok(ack.offset >= 2, 'the publish was acked');
  assert.ok((await failedOn(other)) > failedBefore, 'the POST on the killed node failed');
  assert.deepEqual(await through(client, 'killed', got, 'after'), ['before', 'while a node dies', 'after'], 'each message once, in order');
});
