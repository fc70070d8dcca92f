/**
 * test-runner: rabbitmq (its amqp cases need the machine's RabbitMQ up, which the bus suite restarts).
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ChildProcess } from 'node:child_process';
import { test } from 'node:test';
import { exited } from '../../harness/child.js';
import { forkFanoutServe, runFanout } from '../../harness/fanout-process.js';
import { freePort } from '../../harness/ports.js';
import { inTurns, until } from '../../harness/wait.js';
import { REDIS_URL } from '../helpers/brokers.js';
import { spawnCluster, untilPageServed, untilUrlPrinted } from '../helpers/cluster-process.js';
import { uniquePrefix } from '../helpers/nodes.js';
import { closeAll, connect } from '../helpers/ws-client.js';

test('fanout serve with an invalid value exits 2 with one line naming the flag', async () => {
  const cases = [
    [['serve', '--port', 'abc'], {}, '--port'],
    [['serve', '--bus', 'ftp://x'], {}, '--bus'],
    [['serve', '--heartbeat', 'soon'], {}, '--heartbeat'],
    [['serve', '--connect-hook', 'ftp://app.example/connect'], {}, '--connect-hook'],
    [['serve', '--hook-timeout', '0'], {}, '--hook-timeout'],
    [['serve'], { FANOUT_PUBLISH_HOOK: 'app.example/publish' }, '--publish-hook'],
    [['serve', '--what'], {}, '--what'],
    [['serve'], { FANOUT_MAX_PAYLOAD: 'big' }, '--max-payload'],
    [['haproxy-config', '--servers', 'nope'], {}, '--servers'],
    [['haproxy-config'], {}, '--servers'],
    [['haproxy-config', '--servers', 'a:1', '--balance', 'random'], {}, '--balance'],
    [['cluster', '--nodes', '0'], {}, '--nodes'],
    [['cluster', '--nodes', '2', '--bus', 'memory'], {}, '--bus'],
    [['cluster'], {}, '--nodes'],
    [['cluster', '--node-ports', '9001,x'], {}, '--node-ports'],
    [['cluster', '--node-ports', '9001,9001'], {}, '--node-ports'],
    [['cluster', '--nodes', '3', '--node-ports', '9001,9002'], {}, '--node-ports'],
    [['cluster', '--node-ports', '8080'], {}, '--node-ports'],
    [['cluster', '--nodes', '2', '--bus', 'redis://127.0.0.1:notaport'], {}, '--bus'],
    [['serve', '--history', 'amqp://guest:guest@127.0.0.1:5672'], {}, '--history'],
    [['serve', '--bus', 'amqp://guest:guest@127.0.0.1:5672'], {}, '--history'],
    [['cluster', '--nodes', '2', '--bus', 'amqp://guest:guest@127.0.0.1:5672'], {}, '--history'],
    [['cluster', '--nodes', '2', '--bus', 'kafka://127.0.0.1:9092', '--', '--history', 'memory'], {}, '--history'],
    [['cluster', '--nodes', '2', '--bus', 'nats://127.0.0.1:4222', '--', '--history', 'memory'], {}, '--history'],
    [['serve', '--history', 'nats://127.0.0.1:notaport'], {}, '--history'],
    [['serve'], { FANOUT_HISTORY: 'redis-cluster://127.0.0.1:7000' }, '--history'],
    // Found only when the broker answers, and not healed by retrying: the same one line, exit 2.
    [['serve', '--bus', 'amqp://guest:wrong-password@127.0.0.1:5672', '--history', 'memory'], {}, '--bus'],
  ] as Array<[string[], NodeJS.ProcessEnv, string]>;
  // Three CLI processes at a time: each start is mostly its own CPU (2 cores here).
  const answers = await inTurns(cases, 3, ([args, env]) => runFanout(args, env));
  for (const [i, [args, , flag]] of cases.entries()) {
    const { code, stderr } = answers[i]!;
    assert.equal(code, 2, `${args.join(' ')}: ${stderr}`);
    const lines = stderr.trim().split('\n');
    assert.equal(lines.length, 1, stderr);
    assert.match(lines[0]!, new RegExp(`^fanout: invalid ${flag}\\b`), stderr);
  }
});

test('the CLI\'s words: negative numbers get the schema\'s answer, enums list what is valid, no command is a usage error', async () => {
  const cases = [
    [['serve', '--history-size', '-1'], 'fanout: invalid --history-size: expected at least 0, got "-1"'],
    [['serve', '--history-size=-1'], 'fanout: invalid --history-size: expected at least 0, got "-1"'],
    [['token', '--secret', 's', '--sub', 'u', '--ttl', '-5'], undefined],
    [['serve', '--log-level', 'loud'], 'fanout: invalid --log-level: expected one of fatal, error, warn, info, debug, trace, silent, got "loud"'],
    [['haproxy-config'], 'fanout: invalid --servers: missing: give the nodes as host:port[,host:port…]'],
    [['haproxy-config', '--servers', 'foo'], 'fanout: invalid --servers: expected host:port, got "foo"'],
    // A cluster gets shared history or is refused, saying what to add.
    [
      ['cluster', '--nodes', '2', '--bus', 'nats://127.0.0.1:4222', '--', '--history', 'memory'],
      'fanout: invalid --history: memory keeps history and presence per node, which breaks a chat across 2 nodes; leave --history out (the nats:// bus holds them) or give --history redis://host:port',
    ],
    [
      ['cluster', '--nodes', '2', '--bus', 'redis-cluster://127.0.0.1:7000'],
      'fanout: invalid --history: missing: the redis-cluster:// bus cannot hold channel history, recovery or presence, and the nodes must share them; add --history redis://host:port (or nats://host:port with JetStream, or kafka://host:port)',
    ],
    [
      ['cluster', '--nodes', '2', '--bus', 'amqp://guest:guest@127.0.0.1:5672', '--', '--history', 'memory'],
      'fanout: invalid --history: memory keeps history and presence per node, which breaks a chat across 2 nodes; give --history redis://host:port',
    ],
  ] as Array<[string[], string | undefined]>;
  const answers = await inTurns(cases, 3, ([args]) => runFanout(args));
  for (const [i, [args, line]] of cases.entries()) {
    const { code, stderr } = answers[i]!;
    assert.equal(code, 2, `${args.join(' ')}: ${stderr}`);
    if (line) assert.equal(stderr.trim(), line);
    else assert.doesNotMatch(stderr, /ambiguous/, stderr);
  }
  const bare = await runFanout([]);
  assert.equal(bare.code, 2);
  assert.match(bare.stderr, /^Usage: fanout <command>/);
  assert.equal((await runFanout(['--help'])).code, 0);
});

test('every start-up error the docs quote is what fanout serve prints for that value', async () => {
  const root = fileURLToPath(new URL('../../..', import.meta.url));
  const docs = ['README.md', ...readdirSync(join(root, 'docs')).map((f) => join('docs', f))].map((f) => readFileSync(join(root, f), 'utf8')).join('\n');
  const quoted = [...docs.matchAll(/`(fanout: invalid (--[a-z-]+): [^`]*, got "([^"]*)")`/g)];
  assert.ok(quoted.length >= 2, 'the docs quote start-up errors');
  for (const [, line, flag, value] of quoted) {
    const { code, stderr } = await runFanout(['serve', `${flag}=${value}`]);
    assert.equal(code, 2);
    assert.equal(stderr.trim(), line, `quoted in the docs as ${line}`);
  }
});

test('FANOUT_* variables configure serve', async () => {
  const node = await forkFanoutServe([], { env: { FANOUT_NODE_ID: 'from-env' } });
  try {
    const res = await fetch(`http://127.0.0.1:${node.port}/healthz`);
    assert.equal(((await res.json()) as { node: string }).node, 'from-env');
  } finally {
    await node.stop();
  }
});

test('SIGTERM drains: /readyz turns 503 at once, clients get 1001, the process exits 0', async () => {
  const node = await forkFanoutServe(['--drain-delay', '1', '--drain-timeout', '0']);
  const client = await connect(`ws://127.0.0.1:${node.port}/ws/echo`);
  node.child.kill('SIGTERM');
  const deadline = Date.now() + 2000;
  let status = 0;
  while (Date.now() < deadline) {
    const res = await fetch(`http://127.0.0.1:${node.port}/readyz`);
    await res.arrayBuffer();
    status = res.status;
    if (status === 503) break;
  }
  assert.equal(status, 503);
  assert.equal(await client.waitClose(5000), 1001);
  assert.equal(await node.stop(), 0);
});

test('fanout haproxy-config prints a config for the servers given', async () => {
  const { code, stdout } = await runFanout(['haproxy-config', '--servers', '127.0.0.1:3001,127.0.0.1:3002', '--port', '9090', '--balance', 'leastconn']);
  assert.equal(code, 0);
  assert.match(stdout, /bind 0\.0\.0\.0:9090/);
  assert.match(stdout, /balance leastconn/);
  assert.match(stdout, /server node2 127\.0\.0\.1:3002 check/);
});

test('fanout cluster runs nodes behind HAProxy, prints the URL to open, and on Ctrl-C drains each node once and says it stopped', async () => {
  const port = await freePort();
  const { child, out, exit } = spawnCluster(['--nodes', '2', '--port', String(port), '--bus', REDIS_URL, '--', '--bus-prefix', uniquePrefix('cl'), '--drain-delay', '0', '--log-level', 'warn']);
  try {
    await untilUrlPrinted(child, out, port);
    await untilPageServed(port);
    const clients = [await connect(`ws://127.0.0.1:${port}/ws/echo`), await connect(`ws://127.0.0.1:${port}/ws/echo`)];
    clients[0]!.send('cluster works');
    for (const c of clients) await c.until((m) => m.includes('Received: cluster works'));
    closeAll(clients);
  } finally {
    process.kill(-child.pid!, 'SIGINT');
  }
  assert.equal((await exit).code, 0, out());
  assert.match(out(), /fanout cluster: stopped\n/);
  assert.doesNotMatch(out(), /second signal/, 'each node got one signal and drained');
  await assert.rejects(fetch(`http://127.0.0.1:${port}/ws`), 'HAProxy is stopped');
});

test('SIGTERM on a node with no clients stops it at once, without waiting out --drain-delay', async () => {
  const node = await forkFanoutServe(['--drain-delay', '30']);
  const exit = exited(node.child);
  const started = Date.now();
  node.child.kill('SIGTERM');
  assert.equal((await exit).code, 0);
  assert.ok(Date.now() - started < 15_000, 'a 30 s drain delay was not waited out');
});

/** Resolves once `child`'s output is complete (its pipes closed), which can be after its 'exit'. */
function outputClosed(child: ChildProcess): Promise<void> {
  return child.stdout?.readableEnded ? Promise.resolve() : new Promise((resolve) => child.once('close', () => resolve()));
}

/** The lines a process wrote, each parsed as JSON (a line that is not JSON fails the test). */
function jsonLines(output: string): Array<{ msg: string; level: number }> {
  return output
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => {
      try {
        return JSON.parse(line) as { msg: string; level: number };
      } catch {
        throw new Error(`not a JSON line: ${line}\n--- output:\n${output}`);
      }
    });
}

test('logs: JSON lines when stdout is not a terminal, pretty lines with --log-format pretty (or FANOUT_LOG_FORMAT)', async () => {
  const json = await forkFanoutServe(['--log-level', 'info']);
  const jsonDone = outputClosed(json.child);
  assert.equal(await json.stop(), 0);
  await jsonDone;
  const messages = jsonLines(json.output()).map((l) => l.msg);
  assert.ok(messages.includes('node listening'), json.output());

  for (const [args, env] of [[['--log-format', 'pretty'], {}], [[], { FANOUT_LOG_FORMAT: 'pretty' }]] as const) {
    const pretty = await forkFanoutServe(['--log-level', 'info', '--node-id', 'pretty-node', ...args], { env });
    const done = outputClosed(pretty.child);
    assert.equal(await pretty.stop(), 0);
    await done;
    const lines = pretty.output().split('\n').filter((l) => l.trim() !== '');
    assert.ok(lines.length >= 3, pretty.output());
    for (const line of lines) assert.doesNotMatch(line, /^\{/, 'no JSON line');
    assert.ok(lines.some((l) => /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: pretty-node: node listening /.test(l)), pretty.output());
    assert.ok(lines.some((l) => /INFO: pretty-node: stopped/.test(l)), pretty.output());
  }

  const bad = await runFanout(['serve', '--log-format', 'loud']);
  assert.equal(bad.code, 2);
  assert.equal(bad.stderr, 'fanout: invalid --log-format: expected auto, json or pretty, got "loud"\n');
});

test('log lines come out in order: drained before stopped, stopping before second signal', async () => {
  const node = await forkFanoutServe(['--log-level', 'info', '--drain-delay', '0', '--drain-timeout', '0']);
  const client = await connect(`ws://127.0.0.1:${node.port}/ws/echo`);
  const done = outputClosed(node.child);
  assert.equal(await node.stop(), 0);
  await client.waitClose(5000);
  await done;
  const drained = jsonLines(node.output()).map((l) => l.msg);
  const order = ['stopping', 'draining', 'drained: clients closed', 'stopped'].map((m) => drained.indexOf(m));
  assert.ok(order.every((i) => i >= 0), node.output());
  assert.deepEqual([...order].sort((a, b) => a - b), order, node.output());

  const cut = await forkFanoutServe(['--log-level', 'info', '--drain-delay', '30']);
  const held = await connect(`ws://127.0.0.1:${cut.port}/ws/echo`);
  const exit = exited(cut.child);
  const cutDone = outputClosed(cut.child);
  cut.child.kill('SIGTERM');
  await until(() => cut.output().includes('"draining"'), { timeoutMs: 5000, intervalMs: 20, what: 'the drain to start', detail: cut.output });
  cut.child.kill('SIGTERM');
  assert.equal((await exit).code, 143);
  closeAll([held]);
  await cutDone;
  const cutLines = jsonLines(cut.output()).map((l) => l.msg);
  assert.ok(cutLines.indexOf('stopping') >= 0 && cutLines.indexOf('stopping') < cutLines.indexOf('second signal: exiting now'), cut.output());
  assert.equal(cutLines.at(-1), 'second signal: exiting now');
});

test('fanout cluster --node-ports runs each node on the port given and prints them', async () => {
  const [port, nodePort] = [await freePort(), await freePort()];
  const { child, out, exit } = spawnCluster(['--node-ports', String(nodePort), '--port', String(port), '--', '--drain-delay', '0', '--log-level', 'warn']);
  try {
    await untilUrlPrinted(child, out, port);
    assert.match(out(), new RegExp(`Fanout cluster: 1 node\\(s\\) on 127\\.0\\.0\\.1:${nodePort}, bus memory, history memory\n`));
    const health = await fetch(`http://127.0.0.1:${nodePort}/healthz`);
    assert.equal(health.status, 200);
    assert.equal(((await health.json()) as { node: string }).node, 'node1');
  } finally {
    process.kill(-child.pid!, 'SIGINT');
  }
  assert.equal((await exit).code, 0, out());
});
