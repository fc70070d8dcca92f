/**
 * test-runner: rabbitmq (its amqp point uses the machine's RabbitMQ, which the bus suite restarts).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { runPoint, runScale } from '../../bench/measure.js';
import { frontendSources, planScale, sourceAddresses } from '../../bench/run.js';
import { markdown } from '../../bench/report.js';
import { startSystem, type RunningSystem } from '../../bench/systems.js';
import { BENCH_BROKERS, HISTORY_LOGS, startBenchBroker, type BenchBroker, type BenchBrokerHandle } from '../../bench/brokers.js';
import { startRedisServer } from '../../harness/brokers.js';
import { AMQP_URL, REDIS_URL } from '../helpers/brokers.js';

const START = { bus: REDIS_URL, redisUrl: REDIS_URL, brokerPids: [], nodes: 2, maxconn: 500 } as const;
const POINT = { clients: 20, rate: 5, duration: 2, warmup: 0, workers: 2, publishVia: 'socket', drain: 5 } as const;

// The broker runs and the history-log runs start brokers of their own: they go beside the
// systems' runs, which go one at a time (two of them share a source address).
describe('bench smoke', { concurrency: true }, () => {
  describe('the systems, one at a time', { concurrency: 1 }, () => {
    test('bench smoke: 20 clients through HAProxy to 2 Fanout nodes get every message once, in order', async () => {
      let system: RunningSystem | undefined;
      try {
        system = await startSystem('fanout', START);
        const p = await runPoint(system, { ...POINT, localAddresses: sourceAddresses(20, 0) });
        assert.equal(p.clients, 20);
        assert.equal(p.sent, 10);
        assert.equal(p.expected, 200);
        assert.equal(p.delivered, 200);
        assert.equal(p.ratio, 1);
        assert.equal(p.outOfOrder, 0);
        assert.ok(p.deliveriesPerSec > 0 && p.deliveriesPerSec <= 100, `deliveries/s ${p.deliveriesPerSec}`);
        assert.ok(p.p50 > 0 && p.p50 <= p.p99 && p.p99 <= p.max + 0.1, `latencies ${p.p50} ${p.p99} ${p.max}`);
        assert.ok(p.cpu.nodes >= 0 && p.cpu.haproxy >= 0);
      } finally {
        await system?.stop();
      }
    });

    test('bench smoke: the generator sees the seed server on 2 nodes lose the other node\'s half', async () => {
      let system: RunningSystem | undefined;
      try {
        system = await startSystem('seed2', START);
        const p = await runPoint(system, { ...POINT, localAddresses: sourceAddresses(20, 1) });
        assert.equal(p.expected, 200);
        // Round robin puts the publisher and about half of the clients on one node: only they hear it.
        assert.ok(p.delivered > 0 && p.delivered < 200, `delivered ${p.delivered}`);
        assert.equal(p.delivered % 10, 0, 'each client that hears the publisher hears all 10 messages');
        assert.equal(p.outOfOrder, 0);
      } finally {
        await system?.stop();
      }
    });

    test('bench smoke: the channel run counts every message to 20 subscribers, published over a socket and over POST /api/publish', async () => {
      let system: RunningSystem | undefined;
      try {
        system = await startSystem('channels', START);
        for (const publishVia of ['socket', 'http'] as const) {
          const p = await runPoint(system, { ...POINT, publishVia, localAddresses: sourceAddresses(20, publishVia === 'socket' ? 2 : 3) });
          assert.equal(p.clients, 20, publishVia);
          assert.equal(p.sent, 10, publishVia);
          assert.equal(p.delivered, 200, publishVia);
          assert.equal(p.ratio, 1, publishVia);
          if (publishVia === 'socket') assert.equal(p.outOfOrder, 0);
        }
      } finally {
        await system?.stop();
      }
    });

    test('bench smoke: the Pusher lane: 20 pusher-js-shaped clients on /app/{key} get every event the `pusher` library triggers through HAProxy, once, with its latency', async () => {
      let system: RunningSystem | undefined;
      try {
        system = await startSystem('pusher', START);
        assert.equal(system.target.protocol, 'pusher');
        assert.match(system.target.path, /^\/app\/[0-9a-f]+\?protocol=7&client=js&version=8\.\d+\.\d+&flash=false$/);
        const p = await runPoint(system, { ...POINT, publishVia: 'http', localAddresses: sourceAddresses(20, 30) });
        assert.equal(p.clients, 20, p.errors.join('; '));
        assert.equal(p.sent, 10);
        assert.equal(p.delivered, 200);
        assert.equal(p.ratio, 1);
        assert.equal(p.lostAfterReady, 0);
        assert.ok(p.p50 > 0 && p.p50 <= p.p99 && p.p99 <= p.max + 0.1, `latencies ${p.p50} ${p.p99} ${p.max}`);
        assert.ok(p.cpuPerDelivery > 0);
      } finally {
        await system?.stop();
      }
    });

    test('bench smoke: the SSE run counts every message to 20 plain EventSource streams through HAProxy, beside the same channel over WebSockets; so does the run of SSE sessions subscribed by a POST, as the SDK does', async () => {
      let system: RunningSystem | undefined;
      try {
        system = await startSystem('sse', START);
        assert.equal(system.target.protocol, 'sse');
        const p = await runPoint(system, { ...POINT, localAddresses: sourceAddresses(20, 30) });
        assert.equal(p.system, 'sse');
        assert.equal(p.clients, 20, p.errors.join('; '));
        assert.equal(p.sent, 10);
        assert.equal(p.expected, 200);
        assert.equal(p.delivered, 200);
        assert.equal(p.outOfOrder, 0);
        assert.equal(p.lostAfterReady, 0, p.errors.join('; '));
        assert.ok(p.p50 > 0 && p.p50 <= p.p99 && p.p99 <= p.max + 0.1, `latencies ${p.p50} ${p.p99} ${p.max}`);
        assert.ok(p.cpuPerDelivery > 0);
        // The report puts it in the channel section, with its ratio to the WebSocket row of the same run.
        const channels = { ...p, system: 'channels', cpuPerDelivery: p.cpuPerDelivery / 2 } as const;
        const report = markdown({ startedAt: 'now', command: 'bench', machine: 'm', versions: 'v', clients: 20, duration: 2, bus: 'redis', points: [channels, p], brokers: [], scale: [], skipped: [] });
        const section = report.slice(report.indexOf('## Channels ('), report.indexOf('## Connection scale'));
        assert.match(section, /\| Fanout channels over SSE, plain EventSource \(2 nodes, Redis\) \| 5 \| 100 \| \*\*\d+\*\* \| 100\.0% \|/);
        assert.match(section, /### Channels over SSE against WebSocket, same run[\s\S]*\| plain EventSource \| 5 \| 100 \| 2\.00× \(/);
        assert.doesNotMatch(report.slice(0, report.indexOf('## Channels (')), /over SSE/, 'not in the broadcast table');
        await system.stop();
        system = await startSystem('sse-session', START);
        const s = await runPoint(system, { ...POINT, localAddresses: sourceAddresses(20, 31) });
        assert.equal(s.clients, 20, s.errors.join('; '));
        assert.equal(s.delivered, 200);
        assert.equal(s.outOfOrder, 0);
        assert.equal(s.lostAfterReady, 0, s.errors.join('; '));
      } finally {
        await system?.stop();
      }
    });

    test('bench smoke: the connection-scale run opens its clients from 2 processes through 2 HAProxy processes (each with its own source) and counts every broadcast, for Fanout and the bare ws broadcaster', async () => {
      const plan = planScale(300, 3, 20_000, 9000);
      assert.deepEqual(plan, { processes: 1, frontends: 1, perNode: 19_000 });
      assert.deepEqual(planScale(48_000, 3, 20_000, 9000), { processes: 3, frontends: 6, perNode: 19_000 });
      assert.throws(() => planScale(48_000, 2, 20_000, 9000), /--scale-nodes/);
      for (const [i, name] of (['fanout', 'ws-bare'] as const).entries()) {
        let system: RunningSystem | undefined;
        try {
          system = await startSystem(name, { ...START, nodes: 3, frontendSources: frontendSources(2, 200 + i) });
          assert.equal(system.frontendPorts.length, 2);
          const r = await runScale(system, { clients: 300, processes: 2, localAddresses: sourceAddresses(300, 20 + i), interval: 1, duration: 2, settle: 0.5 });
          assert.equal(r.connected, 300, `${name}: ${r.errors.join('; ')}`);
          assert.deepEqual([r.nodes, r.frontends, r.clientProcesses], [3, 2, 2]);
          assert.equal(r.sent, 2, name);
          assert.equal(r.delivered, 600, name);
          assert.equal(r.outOfOrder, 0, name);
          // Each socket holds a ws object, buffers and listeners: the live heap grows by well over 1 KB each.
          assert.ok(r.nodeHeapPerConn > 1024, `${name}: live heap per connection ${r.nodeHeapPerConn}`);
          assert.ok(Number.isFinite(r.nodeRssPerConn) && r.haproxyRssPerConn > 0, `${name}: memory per connection ${r.nodeRssPerConn} ${r.haproxyRssPerConn}`);
          assert.ok(r.cpuPerDelivery > 0, name);
          // Each HAProxy process connects to the nodes from its own address.
          for (const [j, source] of frontendSources(2, 200 + i).entries()) assert.match(system.haproxyConfigs[j]!, new RegExp(`^ {4}source ${source.replace(/\./g, '\\.')}$`, 'm'));
        } finally {
          await system?.stop();
        }
      }
    });
  });

  test('bench smoke: over every broker of --brokers (its own Redis, NATS, Redis Cluster and Kafka; the machine\'s RabbitMQ), 20 clients get every message once, in order', () =>
    onEachBroker(BENCH_BROKERS, async (broker, i, handle, _redisUrl, keep) => {
      assert.ok(handle.pids.length > 0, `${broker}: the broker's processes are known, so its CPU is counted`);
      const system = keep(await startSystem('fanout', { ...START, bus: handle.url, brokerPids: handle.pids }));
      return runPoint(system, { ...POINT, localAddresses: sourceAddresses(20, 4 + i) });
    }));

  test('bench smoke: the channel path over each --history-logs log (Redis Streams, JetStream, the Kafka log), its broker as the bus: 20 subscribers get every message once, in order', () =>
    onEachBroker(HISTORY_LOGS, async (_log, i, handle, redisUrl, keep) => {
      const system = keep(await startSystem('channels', { ...START, bus: handle.url, redisUrl, brokerPids: handle.pids }));
      return runPoint(system, { ...POINT, localAddresses: sourceAddresses(20, 10 + i) });
    }));
});

/**
 * Each broker of `kinds` in turn, started as the bench starts it (beside a Redis of the test's
 * own), and the point `run` measures on a system it starts there (and hands to `keep`): the 10
 * messages reached all 20 clients once, in order, and the broker's CPU was counted. The system
 * and the broker are stopped after each, also when `run` throws.
 */
async function onEachBroker<K extends BenchBroker>(
  kinds: readonly K[],
  run: (kind: K, i: number, handle: BenchBrokerHandle, redisUrl: string, keep: (system: RunningSystem) => RunningSystem) => ReturnType<typeof runPoint>,
): Promise<void> {
  const redis = await startRedisServer();
  const redisUrl = `redis://127.0.0.1:${redis.port}`;
  try {
    for (const [i, kind] of kinds.entries()) {
      let handle: BenchBrokerHandle | undefined;
      let system: RunningSystem | undefined;
      try {
        handle = await startBenchBroker(kind, { url: redisUrl, pid: redis.pid! }, AMQP_URL);
        const p = await run(kind, i, handle, redisUrl, (s) => (system = s));
        assert.equal(p.sent, 10, kind);
        assert.equal(p.delivered, 200, kind);
        assert.equal(p.outOfOrder, 0, kind);
        assert.ok(p.cpu.broker !== null && p.cpu.broker >= 0, kind);
      } finally {
        await system?.stop();
        await handle?.stop();
      }
    }
  } finally {
    await redis.stop();
  }
}
