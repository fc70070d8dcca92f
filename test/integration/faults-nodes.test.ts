/**
 * Fault tests with real processes: two `fanout serve` nodes on Redis behind a real HAProxy, clients
 * that reconnect like real ones, a publisher ticking all the while. A node is stopped (SIGTERM:
 * graceful drain) or killed (SIGKILL); its clients must come back through HAProxy and keep getting
 * messages. /ws/echo keeps no history, so this checks reconnects and resumed delivery;
 * faults-channels.test.ts checks recovery without loss on /ws/v1.
 */
import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';
import { exited } from '../../harness/child.js';
import { forkFanoutServe, type ServerProcess, waitReadyPort } from '../../harness/fanout-process.js';
import { type RunningHaproxy, startHaproxy } from '../../harness/haproxy.js';
import { until } from '../../harness/wait.js';
import { REDIS_URL } from '../helpers/brokers.js';
import { uniquePrefix } from '../helpers/nodes.js';
import { ReconnectingClient } from '../helpers/reconnecting.js';
import { closeAll, connect, type TestClient } from '../helpers/ws-client.js';

const CLIENTS = 40;
let cleanup: Array<() => unknown> = [];

afterEach(async () => {
  for (const fn of cleanup.reverse()) await fn();
  cleanup = [];
});

interface Cluster {
  nodes: ServerProcess[];
  proxy: RunningHaproxy;
  clients: ReconnectingClient[];
  publisher: TestClient;
  /** The number of the last tick sent. */
  ticks: () => number;
}

async function cluster(extra: string[]): Promise<Cluster> {
  const prefix = uniquePrefix('fault');
  const nodes = await Promise.all(
    ['a', 'b'].map((id) => forkFanoutServe(['--bus', REDIS_URL, '--bus-prefix', prefix, '--node-id', `node-${id}`, '--heartbeat', '0', ...extra])),
  );
  cleanup.push(() => Promise.all(nodes.map((n) => n.stop('SIGKILL'))));
  await Promise.all(nodes.map((n) => waitReadyPort(n.port)));
  const proxy = await startHaproxy(nodes.map((n) => n.port), { checkInterval: 300 });
  cleanup.push(() => proxy.stop());
  const clients: ReconnectingClient[] = [];
  cleanup.push(() => clients.forEach((c) => c.stop()));
  for (let i = 0; i < CLIENTS; i++) {
    const c = new ReconnectingClient(`ws://127.0.0.1:${proxy.port}/ws/echo`);
    clients.push(c);
    await c.start();
  }
  // The publisher talks to node b directly: it stays up in every test.
  const publisher = await connect(`ws://127.0.0.1:${nodes[1]!.port}/ws/echo`);
  cleanup.push(() => publisher.close());
  let tick = 0;
  const timer = setInterval(() => publisher.send(`tick ${++tick}`), 20);
  cleanup.unshift(() => clearInterval(timer));
  for (const c of clients) await c.until(() => c.messages.some((m) => m.startsWith('Received: tick')), 10_000, 'a first tick');
  return { nodes, proxy, clients, publisher, ticks: () => tick };
}


async function connections(node: ServerProcess): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${node.port}/healthz`);
  return ((await res.json()) as { connections: number }).connections;
}

async function exitOf(node: ServerProcess): Promise<number | null> {
  return (await exited(node.child)).code;
}

/** Every client gets a tick published after `after`: delivery resumed for all of them. */
async function allReceiveAfter(clients: ReconnectingClient[], after: number): Promise<void> {
  const wanted = (m: string) => m.startsWith('Received: tick ') && Number(m.slice(15)) > after;
  await Promise.all(clients.map((c) => c.until(() => c.messages.some(wanted), 15_000, `a tick after ${after}`)));
}

test('SIGTERM under load: readiness drops at once, new clients go elsewhere, old ones get 1001 spread over --drain-timeout, reconnect through HAProxy and keep receiving', async () => {
  const { nodes, proxy, clients, ticks } = await cluster(['--drain-delay', '1.5', '--drain-timeout', '2']);
  const [a, b] = nodes as [ServerProcess, ServerProcess];
  const onA = await connections(a);
  assert.ok(onA >= CLIENTS / 4 && onA <= (3 * CLIENTS) / 4, `HAProxy spread the clients (${onA} of ${CLIENTS} on a)`);

  const exited = exitOf(a);
  const t0 = Date.now();
  a.child.kill('SIGTERM');
  let status = 0;
  while (status !== 503 && Date.now() - t0 < 1000) {
    const res = await fetch(`http://127.0.0.1:${a.port}/readyz`);
    await res.arrayBuffer();
    status = res.status;
  }
  assert.equal(status, 503, '/readyz answers 503 during the drain delay');

  // Clients arriving during the drain never land on the draining node: it refuses the upgrade
  // with 503 and HAProxy retries it on another server (retry-on 503).
  const late: TestClient[] = [];
  cleanup.push(() => closeAll(late));
  for (let i = 0; i < 6; i++) late.push(await connect(`ws://127.0.0.1:${proxy.port}/ws/echo`));

  assert.equal(await exited, 0, 'the drained node exits 0');
  const drained = clients.filter((c) => c.closeCodes.length > 0);
  assert.equal(drained.length, onA, 'exactly the clients of the drained node were closed');
  for (const c of drained) assert.deepEqual(c.closeCodes, [1001]);
  const times = drained.map((c) => c.closeTimes[0]!).sort((x, y) => x - y);
  assert.ok(times[0]! - t0 >= 1400, `no client closed before --drain-delay (first after ${times[0]! - t0} ms)`);
  assert.ok(times.at(-1)! - times[0]! >= 1000, `closes spread over --drain-timeout (${times.at(-1)! - times[0]!} ms)`);
  for (const c of late) assert.equal(c.closeCode, undefined, 'a client that arrived during the drain was not closed');

  await allReceiveAfter(clients, ticks());
  for (const c of drained) assert.ok(c.opens >= 2, 'reconnected');
  assert.equal(await connections(b), CLIENTS + late.length + 1, 'everyone is on the remaining node');
});

test('SIGKILL under load: the dead node\'s clients reconnect through HAProxy at once and keep receiving', async () => {
  const { nodes, clients, ticks } = await cluster([]);
  const [a, b] = nodes as [ServerProcess, ServerProcess];
  const onA = await connections(a);
  assert.ok(onA > 0, `a has clients (a ${onA}, b ${await connections(b)})`);
  a.child.kill('SIGKILL');
  await exitOf(a);
  const last = ticks();
  await allReceiveAfter(clients, last);
  const dropped = clients.filter((c) => c.closeCodes.length > 0);
  assert.equal(dropped.length, onA);
  for (const c of dropped) {
    assert.deepEqual(c.closeCodes, [1006], 'a killed node sends no close frame');
    assert.ok(c.opens >= 2);
  }
  assert.equal(await connections(b), CLIENTS + 1);
});

test('a second SIGTERM during the drain exits at once with 143', async () => {
  const node = await forkFanoutServe(['--drain-delay', '30']);
  cleanup.push(() => node.stop('SIGKILL'));
  const client = await connect(`ws://127.0.0.1:${node.port}/ws/echo`);
  cleanup.push(() => client.close());
  const exited = exitOf(node);
  node.child.kill('SIGTERM');
  // Wait until the first signal took effect (/readyz 503: nothing outside the process tells sooner), then send the second.
  await until(
    async () => {
      const res = await fetch(`http://127.0.0.1:${node.port}/readyz`);
      await res.arrayBuffer();
      return res.status === 503;
    },
    { timeoutMs: 10_000, intervalMs: 10, what: 'the drain to begin (/readyz 503)' },
  );
  node.child.kill('SIGTERM');
  assert.equal(await exited, 143);
});
