/**
 * `fanout haproxy-config --source ADDR`: HAProxy connects to the nodes from that address (so
 * several proxies on one box each get their own ephemeral ports). The generated line passes
 * `haproxy -c`, a real HAProxy's connections reach the node from it, and a bad address stops
 * the command with one line naming the flag. `fanout cluster --source` does the same for its
 * HAProxy and has the nodes trust that address's X-Forwarded-For.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { MemoryBroker } from '../../src/brokers/memory/bus.js';
import { createConfig } from '../../src/config/load.js';
import { createNode } from '../../src/app.js';
import { runFanout } from '../../harness/fanout-process.js';
import { freePort } from '../../harness/ports.js';
import { HAPROXY, startHaproxy, TEST_HAPROXY_DEFAULTS } from '../../harness/haproxy.js';
import { haproxyConfig, sourceAddress } from '../../src/haproxy/config.js';
import { until } from '../../harness/wait.js';
import { spawnCluster, untilPageServed, untilUrlPrinted } from '../helpers/cluster-process.js';
import { captureLogger } from '../helpers/security.js';
import { connect } from '../helpers/ws-client.js';

/** `haproxy -c` on `cfg`: its output when valid, throws otherwise. */
function haproxyCheck(cfg: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'fanout-source-'));
  try {
    const file = join(dir, 'haproxy.cfg');
    writeFileSync(file, cfg);
    return execFileSync(HAPROXY, ['-c', '-f', file], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('haproxy-config --source puts `source ADDR` in the defaults, and HAProxy accepts it (IPv4 and IPv6)', async () => {
  for (const [given, line] of [
    ['127.0.0.2', '    source 127.0.0.2'],
    ['[::1]', '    source [::1]'],
  ] as const) {
    const { code, stdout, stderr } = await runFanout(['haproxy-config', '--servers', '127.0.0.1:3001,127.0.0.1:3002', '--source', given]);
    assert.equal(code, 0, stderr);
    const lines = stdout.split('\n');
    const defaults = lines.slice(lines.indexOf('defaults'), lines.indexOf('frontend fanout'));
    assert.ok(defaults.includes(line), `no ${JSON.stringify(line)} in the defaults section:\n${defaults.join('\n')}`);
    assert.match(haproxyCheck(stdout), /Configuration file is valid/);
  }
  assert.equal(sourceAddress('::1'), '[::1]', 'a bare IPv6 address is bracketed');
  const plain = haproxyConfig({ servers: [{ host: '127.0.0.1', port: 3001 }], ...TEST_HAPROXY_DEFAULTS, port: 8080 });
  assert.doesNotMatch(plain, /^\s*source /m, 'no source line unless asked');
});

test('haproxy-config with a bad --source exits 2 with one line naming the flag', async () => {
  for (const bad of ['nope', '127.0.0.2:1024', '127.0.0.2\nglobal']) {
    const { code, stdout, stderr } = await runFanout(['haproxy-config', '--servers', '127.0.0.1:3001', '--source', bad]);
    assert.equal(code, 2, `--source ${JSON.stringify(bad)}`);
    assert.equal(stdout, '');
    assert.equal(stderr, `fanout: invalid --source: expected an IP address of the proxy's machine, e.g. 127.0.0.2, got ${JSON.stringify(bad)}\n`);
  }
});

test('with source 127.0.0.2 a real HAProxy reaches the node from 127.0.0.2, and clients are served', async () => {
  const capture = captureLogger();
  const node = createNode({
    config: createConfig({ port: 0, host: '127.0.0.1', heartbeat: 0, drainDelay: 0, drainTimeout: 0 }),
    logger: capture.logger,
    broker: new MemoryBroker(),
  });
  await node.start();
  const proxy = await startHaproxy([node.address.port], { source: '127.0.0.2' });
  const clients = [await connect(`ws://127.0.0.1:${proxy.port}/ws/echo`), await connect(`ws://127.0.0.1:${proxy.port}/ws/echo`)];
  try {
    assert.match(proxy.config, /^ {4}source 127\.0\.0\.2$/m);
    clients[0]!.send('from behind the proxy');
    for (const c of clients) await c.until((m) => m.includes('Received: from behind the proxy'));
    // The node logs each connection with its TCP peer (no --trust-proxy): HAProxy's source address.
    await until(() => capture.lines.filter((l) => l['msg'] === 'connected').length === 2, { what: 'two connections logged' });
    assert.deepEqual(
      capture.lines.filter((l) => l['msg'] === 'connected').map((l) => l['ip']),
      ['127.0.0.2', '127.0.0.2'],
    );
  } finally {
    for (const c of clients) c.close();
    await proxy.stop();
    await node.close();
  }
});

test('fanout cluster --source 127.0.0.2: HAProxy connects from it, the nodes trust its X-Forwarded-For, and a bad one exits 2 naming the flag', async () => {
  const bad = await runFanout(['cluster', '--nodes', '1', '--source', 'nope']);
  assert.equal(bad.code, 2);
  assert.equal(bad.stderr, `fanout: invalid --source: expected an IP address of the proxy's machine, e.g. 127.0.0.2, got "nope"\n`);

  const port = await freePort();
  const { child, out, exit } = spawnCluster(['--nodes', '1', '--port', String(port), '--source', '127.0.0.2', '--', '--drain-delay', '0']);
  try {
    await untilUrlPrinted(child, out, port);
    const cfg = readFileSync(/HAProxy config: (\S+)/.exec(out())![1]!, 'utf8');
    assert.match(cfg, /^ {4}source 127\.0\.0\.2$/m);
    await untilPageServed(port);
    // The client connects to HAProxy from 127.0.0.3; the node sees the proxy at 127.0.0.2 and,
    // trusting it, logs the client's own address from X-Forwarded-For.
    const client = await connect(`ws://127.0.0.1:${port}/ws/echo`, { localAddress: '127.0.0.3' });
    client.send('through the sourced proxy');
    await client.until((m) => m.includes('Received: through the sourced proxy'));
    client.close();
    await until(() => /"msg":"connected"/.test(out()), { wake: out.changes, what: 'the connection logged' });
    // The node's lines come through the cluster as `[node1] {…}`.
    const logged = out()
      .split('\n')
      .filter((l) => l.startsWith('[node1] ') && l.includes('"msg":"connected"'))
      .map((l) => (JSON.parse(l.slice('[node1] '.length)) as { ip: string }).ip);
    assert.deepEqual(logged, ['127.0.0.3']);
  } finally {
    process.kill(-child.pid!, 'SIGINT');
  }
  assert.equal((await exit).code, 0, out());
});
