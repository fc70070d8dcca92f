/**
 * What the Kafka adapter does beyond the conformance suite, on a private broker (scripts/kafka-dev.sh
 * on free ports) with a second listener behind a TCP proxy: a node whose link is cut or goes
 * silent comes back and reads what was published meanwhile from the log, once each, in order; a broker crash keeps
 * what the log held; two `fanout serve` nodes deliver /ws/echo across a crash; `fanout cluster`
 * runs on Kafka; bad URLs exit 2.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import type { Bus, BusStatus } from '../../src/stores/bus.js';
import { createBus } from '../../src/brokers/create-bus.js';
import { parseBusAddress } from '../../src/config/bus-address.js';
import { BusUnavailableError, ConfigError } from '../../src/errors.js';
import { FANOUT_MAIN, forkFanoutServe, type ServerProcess, waitReadyPort } from '../../harness/fanout-process.js';
import type { KafkaProcess } from '../../harness/kafka.js';
import { freePort } from '../../harness/ports.js';
import { Changes, until } from '../../harness/wait.js';
import { spawnCluster, untilUrlPrinted } from '../helpers/cluster-process.js';
import { uniquePrefix } from '../helpers/nodes.js';
import { startProxiedKafka, type ProxiedKafka } from '../helpers/proxied-kafka.js';
import type { TcpProxy } from '../helpers/tcp-proxy.js';
import { closeAll, connect, type TestClient } from '../helpers/ws-client.js';
import { connectChannels, frames, messagesOf, publish, request, subscribe, waitMessages, type Frame } from '../helpers/channels.js';

const run = promisify(execFile);

let kafka: KafkaProcess;
let proxy: TcpProxy;

let broker: ProxiedKafka | undefined;

before(async () => {
  broker = await startProxiedKafka();
  ({ kafka, proxy } = broker);
});

after(async () => {
  await broker?.destroy();
});

/** A bus playing a node: resubscribes on `connected` as the node does, records messages and statuses. */
class Peer {
  readonly got: string[] = [];
  readonly statuses: BusStatus[] = [];
  private readonly changes = new Changes();

  constructor(
    readonly bus: Bus,
    private readonly topic: string,
  ) {
    bus.onMessage((t, payload) => {
      if (t === topic) this.got.push(payload.toString());
      this.changes.notify();
    });
    bus.onStatus((status) => {
      this.statuses.push(status);
      if (status === 'connected') bus.subscribe(topic).catch(() => {});
      this.changes.notify();
    });
  }

  async start(): Promise<this> {
    await this.bus.connect();
    await this.bus.subscribe(this.topic);
    return this;
  }

  until(predicate: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
    return until(predicate, { wake: this.changes, intervalMs: 200, timeoutMs, what, detail: () => `got ${this.got.length}: …${this.got.slice(-3).join(',')}; statuses ${this.statuses.join(',')}` });
  }
}

function numbered(tag: string, n: number): string[] {
  return Array.from({ length: n }, (_, i) => `${tag}${i}`);
}

test('kafka:// URLs: several brokers, default port and topic, a topic from the path; bad ones refused naming --bus', () => {
  assert.deepEqual(parseBusAddress('kafka://10.0.0.1:9092, 10.0.0.2'), {
    kind: 'kafka',
    brokers: ['10.0.0.1:9092', '10.0.0.2:9092'],
    topic: 'fanout',
    describe: 'kafka://10.0.0.1:9092,10.0.0.2:9092/fanout',
  });
  assert.deepEqual(parseBusAddress('kafka://[::1]:19092/chat.events'), { kind: 'kafka', brokers: ['[::1]:19092'], topic: 'chat.events', describe: 'kafka://[::1]:19092/chat.events' });
  for (const bad of ['kafka://', 'kafka://h:0', 'kafka://h:99999', 'kafka://h:x', 'kafka://h:9092/', 'kafka://h:9092/a/b', 'kafka://h:9092/a b', 'kafka://u:p@h:9092']) {
    assert.throws(() => parseBusAddress(bad), (err: unknown) => err instanceof ConfigError && err.flag === '--bus', bad);
  }
  assert.equal(createBus(parseBusAddress('kafka://127.0.0.1:9092')).kind, 'kafka');
});

test('fanout serve with a malformed kafka:// URL exits 2 with one line naming --bus', async () => {
  for (const bad of ['kafka://127.0.0.1:notaport', 'kafka://127.0.0.1:9092/bad topic']) {
    const err = await run(process.execPath, [FANOUT_MAIN, 'serve', '--bus', bad], { timeout: 20_000 }).then(
      () => assert.fail(`${bad} was accepted`),
      (e: { code: number; stderr: string }) => e,
    );
    assert.equal(err.code, 2, err.stderr);
    assert.match(err.stderr.trim(), /^fanout: invalid --bus\b[^\n]*$/, err.stderr);
  }
});

test('many large publishes in flight together (64 KiB, the default --max-payload) all arrive, in order', async () => {
  const topic = `${uniquePrefix('kbig')}:echo`;
  const a = await new Peer(createBus(parseBusAddress(kafka.url())), topic).start();
  const b = await new Peer(createBus(parseBusAddress(kafka.url())), topic).start();
  try {
    // Together they are far past a record batch's 1 MiB limit (max.message.bytes): the adapter must split them.
    const texts = numbered('big', 100).map((t) => t.padEnd(64 * 1024, '.'));
    await Promise.all(texts.map((text) => a.bus.publish(topic, Buffer.from(text))));
    await b.until(() => b.got.length >= texts.length, `${texts.length} large messages`);
    assert.deepEqual(b.got, texts);
  } finally {
    await Promise.all([a.bus.close(), b.bus.close()]);
  }
});

test('the link cut: the node goes disconnected, comes back, and reads what was published meanwhile once each, in order', { timeout: 120_000 }, async () => {
  const topic = `${uniquePrefix('kcut')}:echo`;
  const a = await new Peer(createBus(parseBusAddress(kafka.url())), topic).start();
  const b = await new Peer(createBus(parseBusAddress(kafka.proxiedUrl())), topic).start();
  try {
    for (const text of numbered('p', 10)) await a.bus.publish(topic, Buffer.from(text));
    await b.until(() => b.got.length >= 10, 'p0..p9 on b');

    proxy.cut();
    await b.until(() => !b.bus.connected && b.statuses.includes('disconnected'), 'b disconnected');
    await assert.rejects(b.bus.publish(topic, Buffer.from('refused')), BusUnavailableError);
    // The publisher's link is whole: what it publishes now is acked and in the log.
    assert.equal(a.bus.connected, true);
    await Promise.all(numbered('q', 200).map((text) => a.bus.publish(topic, Buffer.from(text))));

    proxy.restore();
    await b.until(() => b.bus.connected, 'b connected again');
    await b.until(() => b.got.includes('q199'), 'q199 on b');
    await a.bus.publish(topic, Buffer.from('end'));
    for (const p of [a, b]) await p.until(() => p.got.includes('end'), 'end');
    assert.deepEqual(b.got, [...numbered('p', 10), ...numbered('q', 200), 'end'], 'everything once, in publish order');
    assert.deepEqual(a.got, b.got, 'the publisher got the same, its link never cut');
  } finally {
    proxy.restore();
    await Promise.all([a.bus.close(), b.bus.close()]);
  }
});

test('a silent link (nothing answers, no reset): the node goes disconnected within bounded time, then catches up once each', { timeout: 120_000 }, async () => {
  const topic = `${uniquePrefix('ksilent')}:echo`;
  const a = await new Peer(createBus(parseBusAddress(kafka.url())), topic).start();
  const b = await new Peer(createBus(parseBusAddress(kafka.proxiedUrl())), topic).start();
  try {
    await a.bus.publish(topic, Buffer.from('before'));
    await b.until(() => b.got.includes('before'), 'before on b');
    // Every byte through the proxy now waits a minute: requests go out, answers do not come back.
    proxy.latency(60_000);
    await b.until(() => !b.bus.connected, 'b disconnected by its request timeouts', 45_000);
    await Promise.all(numbered('s', 50).map((text) => a.bus.publish(topic, Buffer.from(text))));
    proxy.latency(0);
    await b.until(() => b.bus.connected, 'b connected again', 45_000);
    await b.until(() => b.got.includes('s49'), 's49 on b');
    assert.deepEqual(b.got, ['before', ...numbered('s', 50)], 'everything once, in order');
  } finally {
    proxy.latency(0);
    await Promise.all([a.bus.close(), b.bus.close()]);
  }
});

test('the broker crashes and restarts: nodes reconnect, what the log held is delivered once, delivery goes on', { timeout: 180_000 }, async () => {
  const topic = `${uniquePrefix('kcrash')}:echo`;
  const a = await new Peer(createBus(parseBusAddress(kafka.url())), topic).start();
  // b is away (its link cut) while a publishes, so the records wait in the log through the crash.
  const b = await new Peer(createBus(parseBusAddress(kafka.proxiedUrl())), topic).start();
  let brokerDown = false;
  try {
    await a.bus.publish(topic, Buffer.from('before'));
    await b.until(() => b.got.includes('before'), 'before on b');
    proxy.cut();
    await b.until(() => !b.bus.connected, 'b disconnected');
    await Promise.all(numbered('held', 100).map((text) => a.bus.publish(topic, Buffer.from(text))));

    brokerDown = true;
    await kafka.kill();
    await a.until(() => !a.bus.connected, 'a disconnected');
    await assert.rejects(a.bus.publish(topic, Buffer.from('refused')), BusUnavailableError);
    proxy.restore();
    await kafka.start();
    brokerDown = false;

    for (const p of [a, b]) await p.until(() => p.bus.connected, 'connected after the restart', 60_000);
    await b.until(() => b.got.includes('held99'), 'held99 on b', 60_000);
    await a.bus.publish(topic, Buffer.from('after'));
    for (const p of [a, b]) await p.until(() => p.got.includes('after'), 'after');
    const expected = ['before', ...numbered('held', 100), 'after'];
    assert.deepEqual(b.got, expected, 'b: what the log held once, in order, then new messages');
    assert.deepEqual(a.got, expected, 'a: nothing twice after reconnecting, the refused publish never delivered');
  } finally {
    proxy.restore();
    if (brokerDown) await kafka.start();
    await Promise.all([a.bus.close(), b.bus.close()]);
  }
});

test('two fanout serve nodes over Kafka: /ws/echo across nodes, /readyz 503 while the broker is down, delivery again after it restarts', { timeout: 180_000 }, async () => {
  const prefix = uniquePrefix('kserve');
  const nodes: ServerProcess[] = [];
  const clients: TestClient[] = [];
  let brokerDown = false;
  try {
    for (const id of ['k1', 'k2']) nodes.push(await forkFanoutServe(['--bus', kafka.url(), '--history', 'memory', '--bus-prefix', prefix, '--node-id', id, '--drain-delay', '0', '--drain-timeout', '0']));
    for (const n of nodes) await waitReadyPort(n.port, 30_000);
    const [one, two] = nodes as [ServerProcess, ServerProcess];
    clients.push(await connect(`ws://127.0.0.1:${one.port}/ws/echo`), await connect(`ws://127.0.0.1:${two.port}/ws/echo`));
    const [x, y] = clients as [TestClient, TestClient];
    x.send('from one');
    y.send('from two');
    for (const c of clients) await c.until((m) => m.includes('Received: from one') && m.includes('Received: from two'), 15_000);

    brokerDown = true;
    await kafka.kill();
    for (const n of nodes) await waitReadyPort(n.port, 30_000, 503);
    await kafka.start();
    brokerDown = false;
    for (const n of nodes) await waitReadyPort(n.port, 60_000);

    y.send('after restart');
    for (const c of clients) await c.until((m) => m.includes('Received: after restart'), 15_000);
    for (const c of clients) {
      const texts = c.messages.filter((m) => m.startsWith('Received: '));
      assert.equal(new Set(texts).size, texts.length, `no message twice: ${texts.join(' | ')}`);
    }
  } finally {
    closeAll(clients);
    if (brokerDown) await kafka.start();
    await Promise.all(nodes.map((n) => n.stop()));
  }
});

test('fanout cluster --nodes 2 --bus kafka:// (no Redis): /ws/echo on each node and through HAProxy, and a chat: shared history, recovery on the other node, presence', { timeout: 90_000 }, async () => {
  const port = await freePort();
  const { child, out, exit } = spawnCluster(['--nodes', '2', '--port', String(port), '--bus', kafka.url(`kcl-${Date.now()}`), '--', '--presence', 'chat:*', '--bus-prefix', uniquePrefix('kcl'), '--drain-delay', '0', '--log-level', 'warn']);
  const clients: TestClient[] = [];
  try {
    await untilUrlPrinted(child, out, port);
    const nodePorts = [...(/node\(s\) on (.*), bus /.exec(out())?.[1] ?? '').matchAll(/127\.0\.0\.1:(\d+)/g)].map((m) => Number(m[1]));
    assert.equal(nodePorts.length, 2, out());
    for (const p of nodePorts) await waitReadyPort(p, 30_000);
    for (const p of nodePorts) clients.push(await connect(`ws://127.0.0.1:${p}/ws/echo`));
    // HAProxy admits a node once its first health check passes.
    await until(async () => (await fetch(`http://127.0.0.1:${port}/readyz`).then((r) => r.status, () => 0)) === 200, { timeoutMs: 15_000, intervalMs: 100, what: 'HAProxy to admit a node' });
    clients.push(await connect(`ws://127.0.0.1:${port}/ws/echo`));
    clients[0]!.send('from node one');
    clients[1]!.send('from node two');
    for (const c of clients) await c.until((m) => m.includes('Received: from node one') && m.includes('Received: from node two'), 15_000);
    assert.match(out(), /history kafka:\/\//, 'history follows the Kafka bus');

    // The chat: one client on each node.
    const [one, two] = [await connectChannels(nodePorts[0]!), await connectChannels(nodePorts[1]!)];
    clients.push(one, two);
    const { epoch } = await subscribe(one, 'chat:room');
    await subscribe(two, 'chat:room');
    const acks = [await publish(one, 'chat:room', 'hello'), await publish(two, 'chat:room', 'hi')];
    for (const c of [one, two]) assert.deepEqual((await waitMessages(c, 'chat:room', 2)).map((m) => m.data), ['hello', 'hi']);
    const page = await request(two, { type: 'history', channel: 'chat:room' });
    assert.deepEqual((page.messages as Frame[]).map((m) => [m.offset, m.data]), [[acks[0], 'hello'], [acks[1], 'hi']], 'one history, the same on both nodes');
    const ids = [frames(one)[0]!.client, frames(two)[0]!.client];
    await until(
      async () => {
        const list = await request(one, { type: 'presence', channel: 'chat:room' });
        return ids.every((id) => ((list.clients ?? []) as Frame[]).some((c) => c.client === id));
      },
      { timeoutMs: 20_000, intervalMs: 200, what: 'both chat clients in the presence list' },
    );
    // A client that saw "hello" on node one comes back on node two: it gets "hi", once.
    const back = await connectChannels(nodePorts[1]!);
    clients.push(back);
    const reply = await subscribe(back, 'chat:room', { offset: acks[0]!, epoch: epoch as string });
    assert.equal(reply.recovered, true);
    assert.deepEqual(messagesOf(back, 'chat:room').map((m) => m.data), ['hi']);
  } finally {
    closeAll(clients);
    process.kill(-child.pid!, 'SIGINT');
  }
  assert.equal((await exit).code, 0, out());
});
