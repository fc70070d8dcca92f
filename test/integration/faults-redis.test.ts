/**
 * Broker faults with real processes: a private redis-server killed and restarted, and a TCP proxy
 * between a node and Redis that adds latency or cuts the link. Nodes must stay up, keep serving
 * their own clients, say 503 on /readyz, count refused publishes, log the outage once, and resume
 * cross-node delivery within seconds when the broker is back.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { afterEach, test } from 'node:test';
import { startRedisServer } from '../../harness/brokers.js';
import { forkFanoutServe, type ServerProcess, waitReadyPort } from '../../harness/fanout-process.js';
import { startHaproxy } from '../../harness/haproxy.js';
import { sleep } from '../../harness/wait.js';
import { REDIS_URL } from '../helpers/brokers.js';
import { scrape } from '../helpers/metrics.js';
import { connectChannels, publish, request } from '../helpers/channels.js';
import { httpUrl, startNode, uniquePrefix, waitNodesReady } from '../helpers/nodes.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';
import { closeAll, connect, type TestClient } from '../helpers/ws-client.js';

let cleanup: Array<() => unknown> = [];
afterEach(async () => {
  for (const fn of cleanup.reverse()) await fn();
  cleanup = [];
});

async function readyz(node: ServerProcess): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${node.port}/readyz`);
  await res.arrayBuffer();
  return res.status;
}

function untilReadyz(node: ServerProcess, status: number, timeoutMs = 10_000): Promise<void> {
  return waitReadyPort(node.port, timeoutMs, status);
}

/** Sends numbered messages from `from` until `to` receives one; returns how long it took. */
async function crossNodeDelivery(from: TestClient, to: TestClient, tag: string, timeoutMs = 15_000): Promise<number> {
  const started = Date.now();
  let n = 0;
  const timer = setInterval(() => from.send(`${tag} ${++n}`), 100);
  try {
    await to.until((m) => m.some((x) => x.startsWith(`Received: ${tag} `)), timeoutMs, `${tag} across nodes`);
  } finally {
    clearInterval(timer);
  }
  return Date.now() - started;
}

function count(text: string, needle: string): number {
  return text.split(needle).length - 1;
}

test('Redis killed and restarted: nodes stay up and serve locally, readiness 503, HAProxy still admits clients, one log line, delivery resumes within seconds', async () => {
  const redis = await startRedisServer();
  cleanup.push(() => redis.destroy());
  const prefix = uniquePrefix('outage');
  const nodes = await Promise.all(['a', 'b'].map((id) => forkFanoutServe(['--bus', redis.url, '--bus-prefix', prefix, '--node-id', `node-${id}`])));
  cleanup.push(() => Promise.all(nodes.map((n) => n.stop('SIGKILL'))));
  const [a, b] = nodes as [ServerProcess, ServerProcess];
  for (const n of nodes) await untilReadyz(n, 200);
  const proxy = await startHaproxy(nodes.map((n) => n.port), { checkInterval: 200 });
  cleanup.push(() => proxy.stop());
  const ca = await connect(`ws://127.0.0.1:${a.port}/ws/echo`);
  const cb = await connect(`ws://127.0.0.1:${b.port}/ws/echo`);
  const clients = [ca, cb];
  cleanup.push(() => closeAll(clients));
  await crossNodeDelivery(ca, cb, 'before');

  await redis.stop('SIGKILL');
  for (const n of nodes) await untilReadyz(n, 503);

  // Local clients keep being served; the refused publishes are counted, never silently lost.
  ca.send('during');
  await ca.until((m) => m.includes('Received: during'));
  const m = await scrape(`http://127.0.0.1:${a.port}`);
  assert.equal(m.value('fanout_bus_connected'), 0);
  assert.ok(m.value('fanout_bus_errors_total', { operation: 'publish' }) >= 1);

  // No node is ready, yet HAProxy admits clients: it falls back to the live (backup) servers.
  await proxy.untilServers(nodes.map((_, i) => `fanout_ws/node${i + 1}`), 'DOWN'); // every primary is down
  const viaProxy = await connect(`ws://127.0.0.1:${proxy.port}/ws/echo`);
  clients.push(viaProxy);
  viaProxy.send('degraded');
  await viaProxy.until((x) => x.includes('Received: degraded'));

  // Let ioredis retry for a while: the outage is still logged once. (A fixed wait on purpose:
  // the point is that nothing more is logged during it.)
  await sleep(2500);
  for (const n of nodes) {
    assert.equal(count(n.output(), 'bus disconnected'), 1, `${n.id} logged the outage once:\n${n.output()}`);
    assert.ok(n.child.exitCode === null, `${n.id} is still running`);
  }
  assert.ok(count(a.output(), 'bus publish failed') <= 1, 'publish failures are logged at most every 10 s');

  const restarted = Date.now();
  await redis.start();
  for (const n of nodes) await untilReadyz(n, 200, 15_000);
  await crossNodeDelivery(ca, cb, 'after');
  await crossNodeDelivery(cb, ca, 'back');
  const took = Date.now() - restarted;
  process.stdout.write(`# cross-node delivery both ways ${took} ms after redis-server restarted\n`);
  assert.ok(took < 15_000, `cross-node delivery resumed ${took} ms after Redis came back`);
  assert.ok(!cb.messages.includes('Received: during'), 'what the broker refused was not delivered later either');
});

test('a TCP proxy between a node and Redis: added latency shows in delivery and in the latency histogram; a cut link is survived and healed', async () => {
  const link = await TcpProxy.start(Number(new URL(REDIS_URL).port || 6379), new URL(REDIS_URL).hostname);
  cleanup.push(() => link.close());
  const prefix = uniquePrefix('link');
  // Node a reaches Redis through the proxy; node b directly.
  const a = await forkFanoutServe(['--bus', `redis://127.0.0.1:${link.port}`, '--bus-prefix', prefix, '--node-id', 'node-a']);
  const b = await forkFanoutServe(['--bus', REDIS_URL, '--bus-prefix', prefix, '--node-id', 'node-b']);
  cleanup.push(() => Promise.all([a, b].map((n) => n.stop('SIGKILL'))));
  for (const n of [a, b]) await untilReadyz(n, 200);
  const ca = await connect(`ws://127.0.0.1:${a.port}/ws/echo`);
  const cb = await connect(`ws://127.0.0.1:${b.port}/ws/echo`);
  cleanup.push(() => closeAll([ca, cb]));
  await crossNodeDelivery(cb, ca, 'warm');

  link.latency(150);
  const sent = Date.now();
  cb.send('slow');
  await ca.until((m) => m.includes('Received: slow'), 10_000);
  assert.ok(Date.now() - sent >= 140, `the message crossed the slow link (${Date.now() - sent} ms)`);
  const metrics = await scrape(`http://127.0.0.1:${a.port}`);
  const n = metrics.value('fanout_publish_latency_seconds_count');
  assert.ok(n >= 2);
  assert.ok(metrics.value('fanout_publish_latency_seconds_bucket', { le: '0.1' }) < n, 'the slow message is counted above 100 ms');
  link.latency(0);

  link.cut();
  await untilReadyz(a, 503);
  assert.equal(await readyz(b), 200, 'the other node is not affected');
  ca.send('alone');
  await ca.until((m) => m.includes('Received: alone'));
  link.restore();
  await untilReadyz(a, 200, 15_000);
  await crossNodeDelivery(ca, cb, 'healed-ab');
  await crossNodeDelivery(cb, ca, 'healed-ba');
  assert.equal(count(a.output(), 'bus disconnected'), 1, a.output());
});

test('a node started while Redis is down serves its clients, says 503, and becomes ready when Redis appears', async () => {
  const redis = await startRedisServer();
  cleanup.push(() => redis.destroy());
  await redis.stop('SIGKILL');
  const node = await forkFanoutServe(['--bus', redis.url, '--bus-prefix', uniquePrefix('late')]);
  cleanup.push(() => node.stop('SIGKILL'));
  assert.equal(await readyz(node), 503);
  const client = await connect(`ws://127.0.0.1:${node.port}/ws/echo`);
  cleanup.push(() => client.close());
  client.send('no broker yet');
  await client.until((m) => m.includes('Received: no broker yet'));
  await redis.start();
  await untilReadyz(node, 200, 15_000);
});

test('a Redis out of memory (maxmemory, noeviction) refuses the publish script: the client hears unavailable in Fanout\'s words, never Redis\'s error text', async () => {
  const redis = await startRedisServer();
  cleanup.push(() => redis.stop());
  const node = await startNode({ bus: redis.url, busPrefix: uniquePrefix('oom'), apiKey: 'k' });
  cleanup.push(() => node.close());
  await waitNodesReady([node]);
  const client = await connectChannels(node);
  cleanup.push(() => client.close());
  await publish(client, 'full', 'fits');
  const cli = (...args: string[]) => new Promise<void>((resolve, reject) => execFile('redis-cli', ['-p', String(redis.port), ...args], (err) => (err ? reject(err) : resolve())));
  await cli('config', 'set', 'maxmemory-policy', 'noeviction');
  await cli('config', 'set', 'maxmemory', '1');
  const overSocket = await request(client, { type: 'publish', channel: 'full', data: 'no room' });
  const overHttp = await fetch(httpUrl(node, '/api/publish'), { method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer k' }, body: JSON.stringify({ channel: 'full', data: 'no room' }) });
  const httpBody = (await overHttp.json()) as { error: string; message: string };
  assert.equal(overSocket.code, 'unavailable', JSON.stringify(overSocket));
  assert.equal(overHttp.status, 503);
  assert.equal(httpBody.error, 'unavailable');
  for (const text of [String(overSocket.message), httpBody.message]) assert.doesNotMatch(text, /OOM|maxmemory|script|ERR|@user/i, `a client read: ${text}`);
});
