/** Limits: payload, fragments, chunks, rate, connection caps, handshake timeout, heartbeat, slow consumers. */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { MemoryBroker } from '../../src/brokers/memory/bus.js';
import { createConfig } from '../../src/config/load.js';
import { CloseCode } from '../../src/errors.js';
import { createNode, type FanoutNode } from '../../src/app.js';
import { until } from '../../harness/wait.js';
import { closeNodes, startNode, wsUrl, type ConfigInput } from '../helpers/nodes.js';
import { frame, rawConnect, rawUpgrade } from '../helpers/raw-ws.js';
import { captureLogger, expectSilentPeerCutLiveStays, WhoamiEndpoint, WHOAMI_PATH } from '../helpers/security.js';
import { closeAll, connect, refusedStatus, type TestClient } from '../helpers/ws-client.js';

const nodes: FanoutNode[] = [];
after(() => closeNodes(nodes));

async function node(config: ConfigInput = {}): Promise<FanoutNode> {
  const n = await startNode(config);
  nodes.push(n);
  return n;
}

/** A node whose logs the test can read. */
async function loggedNode(overrides: ConfigInput = {}) {
  const capture = captureLogger();
  const config = createConfig({ port: 0, host: '127.0.0.1', heartbeat: 0, drainDelay: 0, drainTimeout: 0, ...overrides });
  const n = createNode({ config, logger: capture.logger, broker: new MemoryBroker() });
  await n.start();
  nodes.push(n);
  return { node: n, ...capture };
}

test('--max-payload: a message one byte over closes with 1009; one at the limit passes', async () => {
  const n = await node({ maxPayload: 1000 });
  const client = await connect(wsUrl(n));
  client.send('x'.repeat(1000));
  await client.until((m) => m.length === 1);
  client.send('x'.repeat(1001));
  assert.equal(await client.waitClose(), CloseCode.MESSAGE_TOO_BIG);
});

test('a flood of tiny fragments closes with 1008 (fragment cap)', async () => {
  const n = await node();
  const peer = await rawUpgrade(n.address.port);
  const parts = [frame(0x1, 'a', { fin: false })];
  for (let i = 0; i < 500; i++) parts.push(frame(0x0, 'a', { fin: false }));
  peer.write(Buffer.concat(parts));
  assert.equal(await peer.closed(), CloseCode.POLICY_VIOLATION);
  peer.destroy();
});

test('a frame trickled in one-byte TCP segments closes with 1008 (buffered-chunk cap)', async () => {
  const n = await node();
  const peer = await rawUpgrade(n.address.port);
  peer.socket.setNoDelay(true);
  const body = frame(0x1, 'b'.repeat(60_000));
  for (let i = 0; i < body.length && peer.closeCode === undefined && !peer.ended; i++) {
    peer.write(body.subarray(i, i + 1));
    await new Promise((r) => setImmediate(r));
  }
  assert.equal(await peer.closed(), CloseCode.POLICY_VIOLATION);
  peer.destroy();
});

test('--rate-limit on /ws/echo: going over the limit closes with 1008', async () => {
  const { node: n, lines } = await loggedNode({ rateLimit: 5 });
  const client = await connect(wsUrl(n));
  for (let i = 0; i < 20; i++) client.send(`m${i}`);
  assert.equal(await client.waitClose(), CloseCode.POLICY_VIOLATION);
  assert.ok(client.messages.length >= 1 && client.messages.length <= 5, `burst of 5 delivered, got ${client.messages.length}`);
  await until(() => lines.some((l) => l['msg'] === 'rate limit hit; closing' && l['ip'] === '127.0.0.1'), { timeoutMs: 10_000 });
});

test('--rate-limit on an endpoint with a protocol: an error frame per dropped message, 1008 on persistent abuse', async () => {
  const n = await node({ rateLimit: 3 });
  const endpoint = new WhoamiEndpoint(n);
  n.addEndpoint(endpoint);
  const client = await connect(wsUrl(n, WHOAMI_PATH));
  for (let i = 0; i < 8; i++) client.send(`m${i}`);
  await client.until((m) => m.filter((x) => x.includes('rate_limited')).length === 5, 5000, 'five rate_limited frames');
  assert.equal(client.messages.filter((x) => x.startsWith('m')).length, 3, 'the burst of 3 went through');
  assert.equal(client.closeCode, undefined, 'still open');
  // Persistent: more drops within 10 s than the limit admits in 10 s (30).
  for (let i = 0; i < 40; i++) client.send(`flood${i}`);
  assert.equal(await client.waitClose(), CloseCode.POLICY_VIOLATION);
  assert.equal(client.closeReason, 'rate limit abuse');
});

test('--max-connections answers 503 and --max-connections-per-ip 429 before the upgrade', async () => {
  const clients: TestClient[] = [];
  try {
    const n = await node({ maxConnections: 3, maxConnectionsPerIp: 2 });
    const url = wsUrl(n);
    clients.push(await connect(url, { localAddress: '127.0.0.2' }), await connect(url, { localAddress: '127.0.0.2' }));
    assert.equal(await refusedStatus(url, { localAddress: '127.0.0.2' }), 429);
    clients.push(await connect(url, { localAddress: '127.0.0.3' }));
    assert.equal(await refusedStatus(url, { localAddress: '127.0.0.4' }), 503);
    // A closed connection frees its slots.
    clients.shift()!.close();
    await until(() => n.clientCount === 2, { timeoutMs: 5000, what: 'the close to register' });
    clients.push(await connect(url, { localAddress: '127.0.0.2' }));
  } finally {
    closeAll(clients);
  }
});

test('concurrent handshakes cannot overshoot the per-IP cap', async () => {
  const n = await node({ maxConnectionsPerIp: 5 });
  const results = await Promise.allSettled(Array.from({ length: 20 }, () => connect(wsUrl(n))));
  const open = results.filter((r): r is PromiseFulfilledResult<TestClient> => r.status === 'fulfilled').map((r) => r.value);
  try {
    assert.equal(open.length, 5);
    for (const r of results) if (r.status === 'rejected') assert.equal((r.reason as { status?: number }).status, 429);
  } finally {
    closeAll(open);
  }
});

test('--handshake-timeout: a client that never finishes its headers gets 408 and is cut', async () => {
  const n = await node({ handshakeTimeout: 1 });
  const slow = await rawConnect(n.address.port);
  slow.write('GET /ws/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n');
  const silent = await rawConnect(n.address.port);
  await slow.closed(8000);
  assert.equal(slow.response?.status, 408);
  await silent.closed(8000);
  assert.equal(silent.ended, true);
});

test('--heartbeat: a peer that never answers pings is terminated; a live one stays', async () => {
  const n = await node({ heartbeat: 0.3 });
  const live = await connect(wsUrl(n));
  const dead = await rawUpgrade(n.address.port);
  try {
    // The raw peer reads the pings but never sends a pong.
    await expectSilentPeerCutLiveStays(dead, live);
  } finally {
    live.close();
    dead.destroy();
  }
});

test('--max-buffered: a client that never reads is dropped as a slow consumer (close 4508, then cut), readers unaffected', async () => {
  // The sender pushes far more than --rate-limit-bytes allows on purpose: that limit has its own tests.
  const { node: n, lines } = await loggedNode({ maxBuffered: 256 * 1024, rateLimitBytes: 0 });
  const stuck = await rawUpgrade(n.address.port);
  stuck.socket.pause(); // never reads again
  const sender = await connect(wsUrl(n));
  try {
    const chunk = 'z'.repeat(60_000);
    // Far more than the loopback socket buffers can hold.
    for (let i = 0; i < 600 && n.clientCount === 2; i++) {
      sender.send(chunk);
      if (i % 20 === 19) await sender.until((m) => m.length >= i - 5, 10_000, 'the sender to read its echoes');
    }
    await until(() => n.clientCount === 1, { timeoutMs: 10_000, what: 'the stuck client to be dropped' });
    const entry = lines.find((l) => l['msg'] === 'slow consumer closed');
    assert.ok(entry, 'logged');
    assert.equal(entry['ip'], '127.0.0.1');
    const closed = lines.find((l) => l['msg'] === 'closed' && l['client'] === entry['client']);
    assert.ok(closed, 'close logged');
    assert.ok([CloseCode.SLOW_CONSUMER, 1006].includes(closed['code'] as number), `close code ${String(closed['code'])}`);
    assert.equal(sender.closeCode, undefined, 'the reading client is unaffected');
  } finally {
    sender.close();
    stuck.destroy();
  }
});
