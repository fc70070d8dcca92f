/**
 * test-runner: netns (makes client network namespaces, veth pairs and nftables rules; needs root,
 * iproute2 and nftables, and fails with the one-line reason when one is missing: it never skips).
 *
 * The fault bench's smoke: its fault tools do what they say (loss and a cut stop a connection
 * from a client namespace, restoring lets it through), and one profile with all faults together
 * (loss + delay, link cuts, a node SIGKILLed) on 20 Fanout SDK subscribers for a few seconds ends
 * as the table reports it: every message delivered once, in order.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import { after, before, test } from 'node:test';
import { ClientNetwork, netnsUnavailable } from '../../harness/netns.js';
import { startRedisServer } from '../../harness/brokers.js';
import { FAULT_DEFAULTS, runFaultPoint, type FaultShape } from '../../bench/faults.js';
import { faultsMarkdown } from '../../bench/faults-report.js';

let net: ClientNetwork | undefined;

before(() => {
  const missing = netnsUnavailable();
  if (missing) assert.fail(missing);
  net = ClientNetwork.create();
});
after(() => net?.remove());

/** Whether a TCP connection from inside the namespace to `port` on our end opens within 1.5 s. */
function connectsFromInside(port: number): boolean {
  const script = `const s=require('net').connect(${port},'${net!.hostAddress}');s.on('connect',()=>{console.log('open');process.exit(0)});s.on('error',()=>process.exit(1));setTimeout(()=>process.exit(2),1500)`;
  const r = spawnSync('ip', ['netns', 'exec', net!.name, process.execPath, '-e', script], { encoding: 'utf8' });
  return r.stdout.trim() === 'open';
}

test('fault tools: total loss and a cut link stop connections from a client namespace; removing them lets them through', async () => {
  const server = createServer((s) => s.destroy());
  await new Promise<void>((resolve) => server.listen(0, net!.hostAddress, resolve));
  const { port } = server.address() as { port: number };
  try {
    assert.equal(connectsFromInside(port), true, 'a clean link connects');
    net!.loss(100);
    assert.equal(connectsFromInside(port), false, 'with 100 % loss nothing gets through');
    net!.loss(0);
    net!.cut();
    assert.equal(connectsFromInside(port), false, 'a cut link lets nothing through');
    net!.restore();
    assert.equal(connectsFromInside(port), true, 'a restored link connects again');
  } finally {
    server.close();
  }
});

test('bench --faults smoke: 20 Fanout SDK subscribers under loss, delay, link cuts and a node SIGKILL get every message once, in order', async () => {
  const redis = await startRedisServer();
  try {
    const shape: FaultShape = { ...FAULT_DEFAULTS, clients: 20, duration: 6, cutEvery: 3, cutFor: 1, restartAfter: 1, drain: 30 };
    const r = await runFaultPoint('fanout', 'all', redis.url, [net!], shape);
    assert.equal(r.clients, 20);
    assert.equal(r.published, 120);
    assert.equal(r.expected, 2400);
    assert.deepEqual(r.short, [], 'no subscriber missed a message');
    assert.equal(r.delivered, 2400);
    assert.equal(r.duplicates, 0);
    assert.equal(r.outOfOrder, 0);
    assert.equal(r.unrecovered, 0);
    assert.equal(r.publishFailures, 0);
    // The SIGKILLed node's subscribers (about half, round robin) came back through the other node.
    assert.ok(r.reconnects >= 1, `reconnects ${r.reconnects}`);
    assert.ok(r.p50 > 0 && r.p50 <= r.p99, `latencies ${r.p50} ${r.p99}`);
    const table = faultsMarkdown({ startedAt: 'now', command: 'smoke', machine: 'here', shape, results: [r], failed: [] });
    assert.match(table, /\| all three together \| fanout \| 2400 \/ 2400 \| \*\*100 %\*\* \| 0 \| 0 \|/);
  } finally {
    await redis.stop();
  }
});
