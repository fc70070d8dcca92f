/**
 * `fanout cluster` in a new user's first hour (issue 26, items 2 and 3): no broker stops it with
 * one line and the fix, serve flags before `--` are taken, only working fixes are suggested, the
 * children's lines carry their names, the URL is printed once the nodes are ready, and Ctrl-C
 * with the nodes already gone says so. Real HAProxy, real Redis (the shared one, or a cut proxy
 * in front of it), ports nothing listens on.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { FANOUT_MAIN } from '../../harness/fanout-process.js';
import { freePort } from '../../harness/ports.js';
import { until } from '../../harness/wait.js';
import { REDIS_URL } from '../helpers/brokers.js';
import { spawnCluster, untilPageServed, untilUrlPrinted } from '../helpers/cluster-process.js';
import { uniquePrefix } from '../helpers/nodes.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';
import { connect } from '../helpers/ws-client.js';

const run = promisify(execFile);

async function cluster(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [FANOUT_MAIN, 'cluster', ...args], { timeout: 20_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

/** The lines a child process printed through the cluster, without the `[name] ` in front. */
function linesOf(output: string, name: string): string[] {
  const prefix = `[${name}] `;
  return output.split('\n').filter((l) => l.startsWith(prefix)).map((l) => l.slice(prefix.length));
}

/** The pids of the processes `fanout cluster` (pid `pid`) started: its nodes and HAProxy. */
function childrenOf(pid: number): Array<{ pid: number; cmdline: string }> {
  const pids = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  return pids.map((p) => ({ pid: p, cmdline: readFileSync(`/proc/${p}/cmdline`, 'utf8').replace(/\0/g, ' ') }));
}

test('no broker where the bus or --history points: one line naming the flag, the address and the fix, exit 2, no URL', async () => {
  const port = await freePort();
  const bus = await cluster(['--nodes', '2', '--bus', `redis://127.0.0.1:${port}`]);
  assert.equal(bus.code, 2, bus.stderr);
  assert.equal(
    bus.stderr,
    `fanout: invalid --bus: nothing answers at redis://127.0.0.1:${port} (connect ECONNREFUSED 127.0.0.1:${port}); start redis-server, or pass --bus with the URL of a running one\n`,
  );
  assert.doesNotMatch(bus.stdout, /Open http/);

  const history = await cluster(['--nodes', '2', '--bus', REDIS_URL, '--history', `nats://127.0.0.1:${port}`]);
  assert.equal(history.code, 2, history.stderr);
  assert.equal(
    history.stderr,
    `fanout: invalid --history: nothing answers at nats://127.0.0.1:${port} (connect ECONNREFUSED 127.0.0.1:${port}); start nats-server -js, or pass --history with the URL of a running one\n`,
  );
});

test('an amqp bus without --history: the line suggests only stores a cluster can share', async () => {
  const { code, stderr } = await cluster(['--nodes', '2', '--bus', 'amqp://guest:guest@127.0.0.1:5672']);
  assert.equal(code, 2, stderr);
  assert.match(stderr, /^fanout: invalid --history: missing: the amqp:\/\/ bus cannot hold .*; add --history redis:\/\/host:port \(or nats:\/\/host:port with JetStream, or kafka:\/\/host:port\)\n$/);
  assert.doesNotMatch(stderr, /--history memory/);
  // What it once suggested is indeed refused.
  const memory = await cluster(['--nodes', '2', '--bus', 'amqp://guest:guest@127.0.0.1:5672', '--history', 'memory']);
  assert.equal(memory.code, 2);
  assert.match(memory.stderr, /invalid --history: memory keeps history and presence per node/);
  // An unknown flag before -- is still refused, naming it.
  const unknown = await cluster(['--nodes', '2', '--presense', 'chat:*']);
  assert.equal(unknown.code, 2);
  assert.equal(unknown.stderr, 'fanout: invalid --presense: unknown option (see --help)\n');
});

test('serve flags before --, lines named [node1]/[haproxy], the URL once every node is ready', async () => {
  // The bus is reachable (the proxy accepts) but cut: the nodes listen and cannot connect.
  const redisPort = Number(new URL(REDIS_URL).port || 6379);
  const proxy = await TcpProxy.start(redisPort);
  proxy.cut();
  const port = await freePort();
  const { child, out, exit } = spawnCluster([
    '--nodes', '2', '--port', String(port), '--bus', `redis://127.0.0.1:${proxy.port}`,
    '--presence', 'chat:*', '--bus-prefix', uniquePrefix('clr'), '--drain-delay', '0',
  ]);
  try {
    // Both nodes listen and report their bus down; the URL is not printed while they are not ready.
    await until(() => ['node1', 'node2'].every((n) => linesOf(out(), n).some((l) => l.includes('"msg":"node listening"'))), {
      wake: out.changes, timeoutMs: 15_000, what: 'both nodes listening', detail: out,
    });
    await until(() => linesOf(out(), 'node2').some((l) => /"level":(40|50)/.test(l)), { wake: out.changes, timeoutMs: 15_000, what: 'node2 reporting its bus down', detail: out });
    assert.doesNotMatch(out(), /Open http/, 'no URL while the nodes are not ready');
    proxy.restore();
    await untilUrlPrinted(child, out, port);
    await untilPageServed(port);

    // --presence given before -- reached the nodes: chat:* has presence.
    const client = await connect(`ws://127.0.0.1:${port}/ws/v1`);
    client.sendJson({ type: 'presence', channel: 'chat:lobby', id: 1 });
    const reply = await client.json((f) => f.id === 1);
    assert.equal(reply.type, 'presence', JSON.stringify(reply));
    client.close();

    // Every line is the cluster's own or names the process it came from; the nodes' lines are JSON.
    for (const line of out().split('\n').filter((l) => l !== '')) {
      assert.match(line, /^(\[node[12]\] |\[haproxy\] |fanout cluster: |Fanout cluster: |HAProxy config: |Open http)/, line);
    }
    for (const line of [...linesOf(out(), 'node1'), ...linesOf(out(), 'node2')]) JSON.parse(line);
    assert.doesNotMatch(out(), /DOWN/, 'HAProxy found every node UP at its first check');
  } finally {
    process.kill(-child.pid!, 'SIGINT');
  }
  assert.equal((await exit).code, 0, out());
  await proxy.close();
});

test('Ctrl-C with the nodes already dead says so instead of "draining", and stops HAProxy', async () => {
  const port = await freePort();
  const { child, out, exit } = spawnCluster(['--nodes', '1', '--port', String(port), '--drain-delay', '0', '--log-level', 'warn']);
  try {
    await untilUrlPrinted(child, out, port);
    await untilPageServed(port);
    const node = childrenOf(child.pid!).find((c) => c.cmdline.includes(' serve '));
    assert.ok(node, 'the node process');
    process.kill(node.pid, 'SIGKILL');
    await until(() => out().includes('fanout cluster: node1 exited (SIGKILL); HAProxy routes around it'), { wake: out.changes, what: 'the exit reported', detail: out });
    // HAProxy's own report of it, under its name.
    await until(() => linesOf(out(), 'haproxy').some((l) => /node1 is DOWN/.test(l)), { wake: out.changes, timeoutMs: 15_000, what: 'HAProxy reporting node1 DOWN', detail: out });
  } finally {
    process.kill(-child.pid!, 'SIGINT');
  }
  assert.equal((await exit).code, 0, out());
  assert.match(out(), /fanout cluster: stopping: no node is running; stopping HAProxy\n/);
  assert.doesNotMatch(out(), /draining/);
  assert.match(out(), /fanout cluster: stopped\n/);
  assert.doesNotMatch(out(), /^\[WARNING\]/m, 'HAProxy\'s lines carry its name');
});
