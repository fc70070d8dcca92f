/**
 * Stored but not delivered live is never silent: memory history over another bus (here a memory
 * bus wrapped, so the node treats it as another bus) that refuses a publish after the store took
 * the message. The publisher gets its ack (the message is in history), the subscriber does not
 * get it live, and the node counts it in `fanout_undelivered_total{reason="bus_publish"}` and
 * logs one warn line for a burst of them, saying how many it left out.
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, test } from 'node:test';
import { pino } from 'pino';
import { MemoryBus } from '../../src/brokers/memory/bus.js';
import { createNode, type FanoutNode } from '../../src/app.js';
import { createConfig } from '../../src/config/load.js';
import { BusUnavailableError } from '../../src/errors.js';
import { connectChannels, publish, request, subscribe } from '../helpers/channels.js';
import { scrapeUntil } from '../helpers/metrics.js';
import { closeNodes, httpUrl } from '../helpers/nodes.js';
import { closeAll } from '../helpers/ws-client.js';
import { ForwardingBus } from '../helpers/forwarding-bus.js';

/** A memory bus whose publishes are refused while {@link refusing}, the link staying up. */
class RefusingPublishBus extends ForwardingBus {
  refusing = false;

  override publish(topic: string, payload: Buffer): Promise<void> {
    if (this.refusing) return Promise.reject(new BusUnavailableError('broker refused the publish'));
    return this.inner.publish(topic, payload);
  }
}

const nodes: FanoutNode[] = [];
after(() => closeNodes(nodes));

test('memory history over a bus that refuses the publish: acked and in history, not delivered live, counted and logged once per burst', async () => {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const bus = new RefusingPublishBus(new MemoryBus());
  const node = createNode({ config: createConfig({ port: 0, host: '127.0.0.1', heartbeat: 0, drainDelay: 0, drainTimeout: 0, nodeId: 'a' }), bus, logger: pino({ level: 'warn' }, sink) });
  nodes.push(node);
  await node.start();
  const [subscriber, publisher] = await Promise.all([connectChannels(node), connectChannels(node)]);
  try {
    await subscribe(subscriber, 'room');
    bus.refusing = true;
    const offsets = [];
    for (let i = 1; i <= 3; i++) offsets.push(await publish(publisher, 'room', { i }));
    assert.deepEqual(offsets, [1, 2, 3]);
    await scrapeUntil(httpUrl(node, ''), (s) => s.value('fanout_undelivered_total', { reason: 'bus_publish' }) === 3);
    // In history: a recovery finds them.
    const history = await request(publisher, { type: 'history', channel: 'room', limit: 10 });
    assert.deepEqual((history.messages as Array<{ data: unknown }>).map((m) => m.data), [{ i: 1 }, { i: 2 }, { i: 3 }]);
    // Not live: the subscriber got none of them.
    assert.equal(subscriber.messages.filter((m) => m.includes('"type":"message"')).length, 0);
    // One line for the burst (the next one, after 10 s, would say how many were left out).
    const warned = lines.filter((l) => l.kind === 'undelivered:bus_publish');
    assert.equal(warned.length, 1, JSON.stringify(lines));
    assert.equal(warned[0]!.topic, `${node.config.busPrefix}:ch:room`);
    assert.match(String(warned[0]!.err), /broker refused the publish/);
  } finally {
    closeAll([subscriber, publisher]);
  }
});
