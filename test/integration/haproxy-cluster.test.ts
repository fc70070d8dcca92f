import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { haproxyConfig } from '../../src/haproxy/config.js';
import { forkFanoutServe, type ServerProcess } from '../../harness/fanout-process.js';
import { type RunningHaproxy, startHaproxy } from '../../harness/haproxy.js';
import { REDIS_URL } from '../helpers/brokers.js';
import { uniquePrefix } from '../helpers/nodes.js';
import { closeAll, connect, type TestClient } from '../helpers/ws-client.js';

let nodes: ServerProcess[] = [];
let proxy: RunningHaproxy;

before(async () => {
  const busPrefix = uniquePrefix('hap');
  nodes = await Promise.all([1, 2, 3].map((i) => forkFanoutServe(['--bus', REDIS_URL, '--bus-prefix', busPrefix, '--node-id', `node${i}`])));
  proxy = await startHaproxy(nodes.map((n) => n.port));
});

after(async () => {
  await proxy?.stop();
  await Promise.all(nodes.map((n) => n.stop()));
});

async function connections(node: ServerProcess): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${node.port}/healthz`);
  return ((await res.json()) as { connections: number }).connections;
}

test('three nodes behind HAProxy: a message sent through one node reaches clients on every node once', async () => {
  const clients: TestClient[] = [];
  try {
    for (let i = 0; i < 9; i++) clients.push(await connect(`ws://127.0.0.1:${proxy.port}/ws/echo`));
    // Round robin spread the clients: every node holds some.
    for (const node of nodes) assert.ok((await connections(node)) >= 1, `${node.id} has no client`);
    clients[0]!.send('through haproxy');
    clients[4]!.send('second');
    for (const c of clients) {
      await c.until((m) => m.length >= 2);
      assert.deepEqual([...c.messages].sort(), ['Received: second', 'Received: through haproxy']);
    }
    clients[8]!.send('marker');
    for (const c of clients) {
      await c.until((m) => m.includes('Received: marker'));
      assert.equal(c.messages.length, 3, 'no duplicates');
    }
  } finally {
    closeAll(clients);
  }
});

test('the demo page and health endpoints are served through HAProxy', async () => {
  // GET / sends a browser to the page, on a node and through HAProxy alike.
  for (const port of [nodes[0]!.port, proxy.port]) {
    const root = await fetch(`http://127.0.0.1:${port}/`, { redirect: 'manual' });
    assert.equal(root.status, 302, `GET / on port ${port}`);
    assert.equal(root.headers.get('location'), '/ws');
    await root.arrayBuffer();
    const followed = await fetch(`http://127.0.0.1:${port}/?from=bookmark`);
    assert.equal(followed.url, `http://127.0.0.1:${port}/ws`);
    assert.match(await followed.text(), /id="sendButton"/);
  }
  const page = await fetch(`http://127.0.0.1:${proxy.port}/ws`);
  assert.equal(page.status, 200);
  assert.match(await page.text(), /id="sendButton"/);
  const ready = await fetch(`http://127.0.0.1:${proxy.port}/readyz`);
  assert.equal(ready.status, 200);
  await ready.arrayBuffer();
});

test('HAProxy takes a dead node out and clients keep reaching the others', async () => {
  await nodes[2]!.stop('SIGKILL');
  // Wait for HAProxy's checks to mark it down (inter 500 ms, fall 2): it says so on its output.
  await proxy.untilServers(['fanout_ws/node3', 'fanout_ws/node3-live'], 'DOWN');
  const clients: TestClient[] = [];
  try {
    for (let i = 0; i < 6; i++) clients.push(await connect(`ws://127.0.0.1:${proxy.port}/ws/echo`));
    clients[0]!.send('after a node died');
    for (const c of clients) await c.until((m) => m.includes('Received: after a node died'));
  } finally {
    closeAll(clients);
  }
});

test('the generated config passes `haproxy -c` with every option the issue names', () => {
  const cfg = haproxyConfig({
    servers: [{ host: '10.0.0.1', port: 3001 }, { host: 'node-b', port: 3002 }],
    port: 8080,
    host: '0.0.0.0',
    balance: 'roundrobin',
    maxconn: 8000,
    checkInterval: 2000,
    statsPort: 8404,
  });
  for (const line of [
    'balance roundrobin',
    'option http-server-close',
    'option logasap',
    'timeout tunnel 1h',
    'timeout client-fin',
    'timeout http-request',
    // Longer than the idle timeouts of Node's agent (5 s) and undici (4 s), and announced to them
    // (haproxy-keep-alive.test.ts shows requests failing at 5 s).
    'timeout http-keep-alive 15s',
    'http-response set-header Keep-Alive timeout=15 unless { status 101 }',
    'option httpchk GET /readyz',
    'use_backend fanout_ws if { path_beg /ws }',
    'server node1 10.0.0.1:3001 check',
    'server node2 node-b:3002 check',
    'hard-stop-after',
    'stats enable',
  ]) {
    assert.ok(cfg.includes(line), `missing: ${line}`);
  }
  const dir = mkdtempSync(join(tmpdir(), 'fanout-cfg-'));
  const file = join(dir, 'haproxy.cfg');
  // A name that does not resolve yet (a container not started) must not stop HAProxy.
  writeFileSync(file, cfg);
  const out = execFileSync('haproxy', ['-c', '-f', file], { encoding: 'utf8' });
  assert.match(out, /Configuration file is valid/);
});
