/**
 * One behaviour suite for every bus adapter, run unchanged against memory, redis, redis-cluster,
 * nats, amqp and kafka with the real broker. Several Bus instances play the nodes of a cluster; the last
 * test runs real Fanout nodes (one in-process, one a `fanout serve` process) with that --bus.
 *
 * Broker restarts use private brokers (own redis-server, nats-server, Redis Cluster, Kafka on free
 * ports) or the system RabbitMQ node, which only this suite uses.
 *
 * test-runner: rabbitmq (it restarts the machine's RabbitMQ application: no other file may use it meanwhile).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Bus } from '../../src/stores/bus.js';
import { BusUnavailableError } from '../../src/errors.js';
import type { FanoutNode } from '../../src/app.js';
import { forkFanoutServe, type ServerProcess, waitReadyPort } from '../../harness/fanout-process.js';
import { until } from '../../harness/wait.js';
import { startNode, uniquePrefix, waitNodesReady, wsUrl } from '../helpers/nodes.js';
import { closeAll, connect, type TestClient } from '../helpers/ws-client.js';
import { closePeers, harnesses, Peer, peers, tcpSockets, type Harness } from '../helpers/bus-harness.js';

for (const harness of harnesses) defineConformance(harness);

function defineConformance(harness: Harness): void {
  describe(`bus conformance: ${harness.name}`, { timeout: 120_000 }, () => {
    before(() => harness.setup());
    after(() => harness.teardown());

    test('delivers to every subscribed node, the publisher included, once each', async () => {
      const nodes = await peers(harness, 3);
      const topic = `${uniquePrefix('conf')}:echo`;
      try {
        // Subscribing twice is the same as once (the node resubscribes on every reconnect).
        for (const p of nodes) {
          await p.subscribe(topic);
          await p.subscribe(topic);
        }
        const [a, b] = nodes as [Peer, Peer, Peer];
        for (let i = 0; i < 20; i++) {
          await a.bus.publish(topic, Buffer.from(`a${i}`));
          await b.bus.publish(topic, Buffer.from(`b${i}`));
        }
        await a.bus.publish(topic, Buffer.from('a-end'));
        await b.bus.publish(topic, Buffer.from('b-end'));
        for (const p of nodes) {
          // Order per publisher: once both end markers are in, everything before them is too.
          await p.until(() => p.texts().includes('a-end') && p.texts().includes('b-end'), 'both end markers');
          const texts = p.texts(topic);
          assert.equal(texts.length, 42, `each message once, got ${texts.length}`);
          assert.equal(new Set(texts).size, 42, 'no duplicates');
        }
      } finally {
        await closePeers(nodes);
      }
    });

    test('keeps publish order per publisher, with publishes in flight together', async () => {
      const nodes = await peers(harness, 3);
      const [a, b, c] = nodes as [Peer, Peer, Peer];
      const topic = `${uniquePrefix('conf')}:order`;
      const n = 1000;
      try {
        await c.subscribe(topic);
        // Not awaited one by one: the node publishes each client message without waiting for the last.
        const sent: Array<Promise<void>> = [];
        for (let i = 0; i < n; i++) {
          sent.push(a.bus.publish(topic, Buffer.from(`a:${i}`)));
          sent.push(b.bus.publish(topic, Buffer.from(`b:${i}`)));
        }
        await Promise.all(sent);
        await c.until(() => c.received.length >= 2 * n, `${2 * n} messages`);
        for (const who of ['a', 'b']) {
          const seq = c.texts(topic).filter((t) => t.startsWith(`${who}:`)).map((t) => Number(t.slice(2)));
          assert.deepEqual(seq, Array.from({ length: n }, (_, i) => i), `publisher ${who} in order`);
        }
      } finally {
        await closePeers(nodes);
      }
    });

    test('topics are separate, and unsubscribe stops delivery', async () => {
      const nodes = await peers(harness, 3);
      const [a, b, c] = nodes as [Peer, Peer, Peer];
      const prefix = uniquePrefix('conf');
      const [t1, t2] = [`${prefix}:one`, `${prefix}:two`];
      try {
        await b.subscribe(t1);
        await b.subscribe(t2);
        await c.subscribe(t1);
        await a.bus.publish(t2, Buffer.from('only b'));
        await a.bus.publish(t1, Buffer.from('both'));
        await b.until(() => b.texts(t2).includes('only b') && b.texts(t1).includes('both'), 'both topics on b');
        await c.until(() => c.texts(t1).includes('both'), 't1 on c');
        await b.unsubscribe(t1);
        await a.bus.publish(t1, Buffer.from('after unsubscribe'));
        await a.bus.publish(t2, Buffer.from('still on two'));
        await c.until(() => c.texts(t1).includes('after unsubscribe'), 't1 after unsubscribe on c');
        await b.until(() => b.texts(t2).includes('still on two'), 't2 on b');
        assert.deepEqual(b.texts(t1), ['both'], 'b unsubscribed from t1');
        assert.deepEqual(c.received.map((m) => m.topic), [t1, t1], 'c never gets t2');
        assert.equal(a.received.length, 0, 'a subscribed to nothing');
      } finally {
        await closePeers(nodes);
      }
    });

    test('carries any bytes, small and large, unchanged', async () => {
      const nodes = await peers(harness, 2);
      const [a, b] = nodes as [Peer, Peer];
      const topic = `${uniquePrefix('conf')}:bytes`;
      const got: Buffer[] = [];
      b.bus.onMessage((t, payload) => {
        if (t === topic) got.push(Buffer.from(payload));
      });
      try {
        await b.subscribe(topic);
        const every = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
        const large = Buffer.alloc(256 * 1024, 0);
        for (let i = 0; i < large.length; i++) large[i] = (i * 31) & 0xff;
        const payloads = [Buffer.from([0]), every, large, Buffer.from('\r\nMSG x 1 2\r\n')];
        for (const p of payloads) await a.bus.publish(topic, p);
        await until(() => got.length >= payloads.length, { timeoutMs: 15_000, what: `${payloads.length} payloads`, detail: () => `got ${got.length}` });
        assert.equal(got.length, payloads.length);
        payloads.forEach((p, i) => assert.ok(p.equals(got[i]!), `payload ${i} unchanged`));
      } finally {
        await closePeers(nodes);
      }
    });

    test('reports a broker restart, refuses publishes while down, and delivers again after', async () => {
      const nodes = await peers(harness, 2);
      const [a, b] = nodes as [Peer, Peer];
      const topic = `${uniquePrefix('conf')}:restart`;
      let brokerDown = false;
      try {
        await a.subscribe(topic);
        await b.subscribe(topic);
        await a.bus.publish(topic, Buffer.from('before'));
        await b.until(() => b.texts().includes('before'), 'before');

        brokerDown = true;
        await harness.down();
        for (const p of nodes) await p.until(() => p.statuses.includes('disconnected'), 'disconnected');
        assert.equal(a.bus.connected, false);
        await assert.rejects(a.bus.publish(topic, Buffer.from('lost')), BusUnavailableError);

        await harness.up();
        brokerDown = false;
        for (const p of nodes) await p.until(() => p.bus.connected, 'connected again', 30_000);
        // Resubscribing (the Peer does it on `connected`, as the node does) brings delivery back.
        let i = 0;
        while (!b.texts().some((t) => t.startsWith('after'))) {
          await a.bus.publish(topic, Buffer.from(`after ${i++}`)).catch(() => {});
          await b.until(() => b.texts().some((t) => t.startsWith('after')), 'delivery after restart', 200).catch(() => {});
          assert.ok(i < 150, 'delivery did not resume within ~30 s');
        }
        await a.bus.publish(topic, Buffer.from('end'));
        for (const p of nodes) await p.until(() => p.texts().includes('end'), 'end marker');
        for (const p of nodes) {
          const texts = p.texts();
          assert.equal(new Set(texts).size, texts.length, 'no duplicates after resubscribing');
          assert.ok(!texts.includes('lost'), 'a refused publish is not delivered later');
        }
      } finally {
        if (brokerDown) await harness.up();
        await closePeers(nodes);
      }
    });

    // The memory bus has no broker process that could be down when it connects.
    if (harness.hasBrokerProcess) test('connect() rejects while the broker is down, and the bus connects by itself once it is up', async () => {
      await harness.down();
      let bus: Bus | undefined;
      let brokerDown = true;
      try {
        bus = harness.create();
        const peer = new Peer(bus);
        await assert.rejects(bus.connect(), BusUnavailableError);
        assert.equal(bus.connected, false);
        await assert.rejects(bus.publish('x', Buffer.from('x')), BusUnavailableError);
        await harness.up();
        brokerDown = false;
        await peer.until(() => bus!.connected, 'connected once the broker is up', 30_000);
        const topic = `${uniquePrefix('conf')}:late`;
        await peer.subscribe(topic);
        await bus.publish(topic, Buffer.from('hello'));
        await peer.until(() => peer.texts().includes('hello'), 'own message');
      } finally {
        if (brokerDown) await harness.up();
        await bus?.close();
      }
    });

    test('closes cleanly: twice, publishes refused, no sockets left open', async () => {
      const baseline = tcpSockets();
      const [a] = await peers(harness, 1);
      const topic = `${uniquePrefix('conf')}:close`;
      await a!.subscribe(topic);
      await a!.bus.publish(topic, Buffer.from('x'));
      await a!.until(() => a!.texts().includes('x'), 'own message');
      await a!.bus.close();
      await a!.bus.close();
      assert.equal(a!.statuses.at(-1), 'closed');
      assert.equal(a!.bus.connected, false);
      await assert.rejects(a!.bus.publish(topic, Buffer.from('y')), BusUnavailableError);
      // The sockets' closes are the adapter's business; from here only the count can be watched.
      await until(() => tcpSockets() <= baseline, { timeoutMs: 5000, intervalMs: 50, what: 'every socket to close', detail: () => `${tcpSockets() - baseline} still open` });
    });

    test('real nodes on this bus: each /ws/echo client gets each message once', async () => {
      const busPrefix = uniquePrefix('confnode');
      // Only the bus is tested here: history stays in each node (a bus that cannot hold it needs it said).
      const local = await startNode({ bus: harness.url(), history: 'memory', busPrefix, nodeId: 'c1' }, harness.broker);
      // Memory nodes share a broker in one process; for a real broker the second node is a real
      // `fanout serve` process, so the CLI builds this adapter from the URL too.
      let remote: FanoutNode | ServerProcess;
      if (harness.broker) remote = await startNode({ bus: harness.url(), history: 'memory', busPrefix, nodeId: 'c2' }, harness.broker);
      else remote = await forkFanoutServe(['--bus', harness.url(), '--history', 'memory', '--bus-prefix', busPrefix, '--node-id', 'c2', '--drain-delay', '0', '--drain-timeout', '0']);
      const remoteUrl = 'child' in remote ? `ws://127.0.0.1:${remote.port}/ws/echo` : wsUrl(remote);
      const clients: TestClient[] = [];
      try {
        // Both ready: their bus is connected and subscribed.
        await Promise.all([waitNodesReady([local], 15_000), waitReadyPort('child' in remote ? remote.port : remote.address.port, 15_000)]);
        clients.push(await connect(wsUrl(local)), await connect(remoteUrl), await connect(remoteUrl));
        const [x, y, z] = clients as [TestClient, TestClient, TestClient];
        x.send('from local');
        z.send('from remote');
        for (const c of clients) await c.until((m) => m.includes('Received: from local') && m.includes('Received: from remote'), 10_000);
        x.send('last');
        for (const c of clients) {
          await c.until((m) => m.includes('Received: last'), 10_000);
          assert.deepEqual([...c.messages].sort(), ['Received: from local', 'Received: from remote', 'Received: last']);
        }
        assert.equal(y.messages.length, 3);
      } finally {
        closeAll(clients);
        await local.close();
        if ('child' in remote) await remote.stop();
        else await remote.close();
      }
    });
  });
}
