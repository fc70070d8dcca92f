/**
 * A topic whose subscribe the broker refuses while the bus stays connected (src/node/topics.ts):
 * the route is retried with backoff until the broker takes it, /readyz answers 503 meanwhile, and
 * the failures are counted. Over the memory bus, with a wrapper whose subscribe fails until the
 * test lets it through (a real broker that refuses one subscribe while staying connected needs
 * an ACL change at run time; the retry logic is the router's, the same for every adapter).
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import type { Bus } from '../../src/stores/bus.js';
import { MemoryBroker, MemoryBus } from '../../src/brokers/memory/bus.js';
import { createNode, type FanoutNode } from '../../src/app.js';
import { createConfig } from '../../src/config/load.js';
import { BusUnavailableError } from '../../src/errors.js';
import type { Logger } from '../../src/logger.js';
import { QuietLog } from '../../src/node/quiet-log.js';
import { Changes, until } from '../../harness/wait.js';
import { scrape, scrapeUntil } from '../helpers/metrics.js';
import { closeNodes, httpUrl, startNode, wsUrl } from '../helpers/nodes.js';
import { closeAll, connect } from '../helpers/ws-client.js';
import { ForwardingBus } from '../helpers/forwarding-bus.js';

/** A memory bus whose subscribe of the echo topic is refused (the bus staying connected) until {@link allow}; the node's other topics (the cluster calls') go through. */
class RefusingBus extends ForwardingBus {
  /** Subscribes refused so far. */
  refused = 0;
  private allowed = false;
  readonly changes = new Changes();

  allow(): void {
    this.allowed = true;
  }

  override async subscribe(topic: string): Promise<void> {
    if (!this.allowed && topic.endsWith(':echo')) {
      this.refused++;
      this.changes.notify();
      throw new BusUnavailableError(`NOPERM this user has no permissions to access the '${topic}' channel`);
    }
    await this.inner.subscribe(topic);
  }
}

const nodes: FanoutNode[] = [];
after(() => closeNodes(nodes));

async function readyz(node: FanoutNode): Promise<number> {
  return (await fetch(httpUrl(node, '/readyz'))).status;
}

test('a refused subscribe is retried while the bus stays connected; /readyz answers 503 until the route is back, then messages flow', async () => {
  const broker = new MemoryBroker();
  const bus = new RefusingBus(new MemoryBus(broker));
  const statuses: string[] = [];
  bus.onStatus((status) => statuses.push(status));
  const a = createNode({ config: createConfig({ port: 0, host: '127.0.0.1', heartbeat: 0, drainDelay: 0, drainTimeout: 0, nodeId: 'a' }), bus: bus satisfies Bus });
  nodes.push(a);
  await a.start();
  const b = await startNode({ nodeId: 'b' }, broker);
  nodes.push(b);

  // The echo route's subscribe is refused again and again, with no reconnect in between.
  await until(() => bus.refused >= 3, { timeoutMs: 10_000, wake: bus.changes, what: 'three refused subscribes' });
  assert.deepEqual(statuses, ['connected']);
  assert.equal(a.bus.connected, true);
  assert.equal(await readyz(a), 503);
  const during = await scrape(httpUrl(a, ''));
  assert.equal(during.value('fanout_routes_missing'), 1);
  assert.ok(during.value('fanout_dropped_errors_total', { source: 'subscribe' }) >= 3);
  assert.equal(during.value('fanout_ready'), 0);

  bus.allow();
  await until(async () => (await readyz(a)) === 200, { timeoutMs: 10_000, intervalMs: 50, what: 'a to be ready once the broker takes the subscribe' });
  await scrapeUntil(httpUrl(a, ''), (s) => s.value('fanout_routes_missing') === 0 && s.value('fanout_ready') === 1);

  // The route is live: what a client of b sends reaches a client of a.
  const [onA, onB] = await Promise.all([connect(wsUrl(a)), connect(wsUrl(b))]);
  try {
    onB.send('over the retried route');
    assert.deepEqual(await onA.count(1), ['Received: over the retried route']);
  } finally {
    closeAll([onA, onB]);
  }
});

test('the quiet log writes one line per kind per window, and the next line says how many it left out', () => {
  const lines: Array<{ fields: Record<string, unknown>; message: string }> = [];
  const logger = { warn: (fields: Record<string, unknown>, message: string) => lines.push({ fields, message }) } as unknown as Logger;
  let now = 1_000;
  const quiet = new QuietLog(logger, 10_000, () => now);
  for (let i = 0; i < 5; i++) quiet.warn('subscribe', { i }, 'subscribe failed');
  quiet.warn('undelivered:bus_publish', {}, 'not delivered');
  assert.deepEqual(lines.map((l) => [l.fields.kind, l.fields.i, l.fields.suppressed]), [
    ['subscribe', 0, undefined],
    ['undelivered:bus_publish', undefined, undefined],
  ]);
  now += 9_999;
  quiet.warn('subscribe', { i: 5 }, 'subscribe failed');
  assert.equal(lines.length, 2);
  now += 1;
  quiet.warn('subscribe', { i: 6 }, 'subscribe failed');
  assert.equal(lines.length, 3);
  assert.deepEqual([lines[2]!.fields.i, lines[2]!.fields.suppressed], [6, 5]);
  assert.match(lines[2]!.message, /^subscribe failed \(logged at most every 10 s per kind\)$/);
});
