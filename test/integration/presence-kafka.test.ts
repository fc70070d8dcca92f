/**
 * KafkaPresenceStore (brokers/kafka/presence.ts) against real Kafka, beyond the store suite
 * (test/helpers/store-conformance.ts, which sweeps a SIGKILLed node's clients on every store): stores
 * playing nodes on the shared broker (a topic and prefix of their own per test), and a private
 * broker (harness/kafka.ts) with a proxied listener for a broker restart and a node cut off long
 * enough to be swept.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Admin, ConfigResourceTypes } from '@platformatic/kafka';
import { BusUnavailableError } from '../../src/errors.js';
import { KafkaPresenceStore, type KafkaPresenceOptions } from '../../src/brokers/kafka/presence.js';
import type { PresenceEntry } from '../../src/stores/store.js';
import type { KafkaProcess } from '../../harness/kafka.js';
import { until } from '../../harness/wait.js';
import { uniquePrefix } from '../helpers/nodes.js';
import { startProxiedKafka, type ProxiedKafka } from '../helpers/proxied-kafka.js';
import type { TcpProxy } from '../helpers/tcp-proxy.js';

const SHARED = ['127.0.0.1:9092'];
const TTL = 1;

const stores: KafkaPresenceStore[] = [];
let kafka: KafkaProcess;
let proxy: TcpProxy;

let broker: ProxiedKafka | undefined;

before(async () => {
  broker = await startProxiedKafka();
  ({ kafka, proxy } = broker);
});

after(async () => {
  await Promise.all(stores.map((s) => s.close()));
  await broker?.destroy();
});

/** A store playing node `node`, started, with what it reported departed and how often it was told to rejoin. */
interface Node {
  readonly store: KafkaPresenceStore;
  readonly departed: string[];
  rejoins: number;
}

function node(options: Pick<KafkaPresenceOptions, 'topic' | 'prefix' | 'node'> & { brokers?: readonly string[]; onRejoin?: (n: Node) => void }): Node {
  const n: Node = {
    departed: [],
    rejoins: 0,
    store: new KafkaPresenceStore({
      brokers: options.brokers ?? SHARED,
      topic: options.topic,
      prefix: options.prefix,
      node: options.node,
      ttl: TTL,
      logError: () => {},
      warn: (line) => assert.fail(`unexpected warning: ${line}`),
      rejoin: () => {
        n.rejoins++;
        options.onRejoin?.(n);
      },
    }),
  };
  n.store.start((channel, entry) => n.departed.push(`${channel}/${entry.client}`));
  stores.push(n.store);
  return n;
}

function clients(entries: PresenceEntry[]): string[] {
  return entries.map((e) => e.client).sort();
}

/** Waits until `store` lists exactly `ids` in `channel` (a refused list counts as not yet). */
async function untilListed(store: KafkaPresenceStore, channel: string, ids: string[], timeoutMs = 20_000): Promise<void> {
  const want = JSON.stringify([...ids].sort());
  let last = '';
  await until(
    async () => {
      last = await store.list(channel).then((e) => JSON.stringify(clients(e)), (err: unknown) => `(${(err as Error).message})`);
      return last === want;
    },
    { timeoutMs, intervalMs: 100, what: `${channel} to list ${want}`, detail: () => `listed ${last}` },
  );
}

function names(tag: string): { topic: string; prefix: string } {
  const prefix = uniquePrefix(tag);
  return { topic: `${prefix}-presence`, prefix };
}

test('join, list and leave across two nodes: a list sees what any node wrote before it; the topic is created compacted with one partition', async () => {
  const { topic, prefix } = names('kp');
  const a = node({ topic, prefix, node: 'a' });
  const b = node({ topic, prefix, node: 'b' });
  await a.store.join('chat:room', { client: 'c1', user: 'ann' });
  // No waiting: b's list asks the broker for the end of the topic and reads up to it first.
  assert.deepEqual(await b.store.list('chat:room'), [{ client: 'c1', user: 'ann' }]);
  await b.store.join('chat:room', { client: 'c2', user: null });
  await b.store.join('chat:other', { client: 'c3', user: 'bob' });
  assert.deepEqual(clients(await a.store.list('chat:room')), ['c1', 'c2']);
  assert.deepEqual(await a.store.list('chat:other'), [{ client: 'c3', user: 'bob' }]);
  assert.deepEqual(await a.store.list('chat:nobody'), []);

  await a.store.leave('chat:room', 'c1');
  assert.deepEqual(clients(await b.store.list('chat:room')), ['c2']);
  assert.deepEqual(clients(await a.store.list('chat:room')), ['c2']);
  // A leave asked right after a join (not awaited) is written after it: the client is gone.
  await Promise.all([a.store.join('chat:room', { client: 'c4', user: null }), a.store.leave('chat:room', 'c4')]);
  assert.deepEqual(clients(await b.store.list('chat:room')), ['c2']);
  // A leave of a client that never joined changes nothing.
  await a.store.leave('chat:room', 'c9');
  assert.deepEqual(clients(await a.store.list('chat:room')), ['c2']);
  assert.deepEqual(a.departed, []);
  assert.deepEqual(b.departed, []);

  const admin = new Admin({ clientId: 'presence-test', bootstrapBrokers: SHARED });
  try {
    const [described] = await admin.describeConfigs({ resources: [{ resourceType: ConfigResourceTypes.TOPIC, resourceName: topic, configurationKeys: ['cleanup.policy'] }] });
    assert.equal(described?.configs.find((c) => c.name === 'cleanup.policy')?.value, 'compact');
    assert.equal((await admin.metadata({ topics: [topic] })).topics.get(topic)?.partitionsCount, 1);
  } finally {
    await new Promise<void>((resolve) => admin.close(() => resolve()));
  }
});

test('a new node reads the existing presence from the topic; a closed node\'s clients are gone', async () => {
  const { topic, prefix } = names('kb');
  const a = node({ topic, prefix, node: 'a' });
  const b = node({ topic, prefix, node: 'b' });
  for (let i = 0; i < 5; i++) await a.store.join('chat:r', { client: `a${i}`, user: `u${i}` });
  await b.store.join('chat:r', { client: 'b0', user: null });
  await a.store.leave('chat:r', 'a4');

  const late = node({ topic, prefix, node: 'c' });
  assert.deepEqual(await late.store.list('chat:r'), [
    { client: 'a0', user: 'u0' },
    { client: 'a1', user: 'u1' },
    { client: 'a2', user: 'u2' },
    { client: 'a3', user: 'u3' },
    { client: 'b0', user: null },
  ]);
  // Another --bus-prefix on the same topic is another cluster: it sees none of it.
  const other = node({ topic, prefix: `${prefix}-other`, node: 'z' });
  assert.deepEqual(await other.store.list('chat:r'), []);

  // A clean close removes the node's entries and reports them departed (as the other stores do).
  await b.store.close();
  assert.deepEqual(b.departed, ['chat:r/b0']);
  assert.deepEqual(clients(await late.store.list('chat:r')), ['a0', 'a1', 'a2', 'a3']);
  // Nobody swept anything: no node reported a departure.
  await new Promise((r) => setTimeout(r, 3 * TTL * 1000));
  assert.deepEqual([...a.departed, ...late.departed], []);
});

test('a broker restart: calls are refused while it is away, joins made meanwhile are written once it is back, and nobody is swept', async () => {
  const { topic, prefix } = names('kr');
  const brokers = [`127.0.0.1:${kafka.port}`];
  const a = node({ topic, prefix, node: 'a', brokers });
  const b = node({ topic, prefix, node: 'b', brokers });
  await until(() => a.store.join('chat:r', { client: 'a1', user: null }).then(() => true), { timeoutMs: 20_000, intervalMs: 200, what: 'a to join a1' });
  await until(() => b.store.join('chat:r', { client: 'b1', user: null }).then(() => true), { timeoutMs: 20_000, intervalMs: 200, what: 'b to join b1' });
  await untilListed(a.store, 'chat:r', ['a1', 'b1']);

  await kafka.kill();
  const asked = Date.now();
  await assert.rejects(a.store.list('chat:r'), BusUnavailableError);
  await assert.rejects(a.store.join('chat:r', { client: 'a2', user: 'late' }), BusUnavailableError);
  await assert.rejects(b.store.leave('chat:r', 'b1'), BusUnavailableError);
  assert.ok(Date.now() - asked < 30_000, 'refused within a bounded wait');
  // Away for several ttls.
  await new Promise((r) => setTimeout(r, 3 * TTL * 1000));

  await kafka.start();
  // The refused join and leave were kept and written on reconnect.
  await untilListed(a.store, 'chat:r', ['a1', 'a2'], 60_000);
  await untilListed(b.store, 'chat:r', ['a1', 'a2'], 20_000);
  assert.deepEqual((await b.store.list('chat:r')).find((e) => e.client === 'a2'), { client: 'a2', user: 'late' });
  // Both nodes came back within a ttl of each other: nobody was taken for dead.
  await new Promise((r) => setTimeout(r, 3 * TTL * 1000));
  assert.deepEqual([...a.departed, ...b.departed], []);
  assert.equal(a.rejoins + b.rejoins, 0);
});

test('a node cut off from Kafka for longer than the ttl is swept, then registers again and rejoins its clients', async () => {
  const { topic, prefix } = names('kc');
  const a = node({ topic, prefix, node: 'a', brokers: [`127.0.0.1:${kafka.port}`] });
  // b reaches the broker through the proxy; its rejoin joins its clients again, as the channel layer does.
  const b = node({
    topic,
    prefix,
    node: 'b',
    brokers: [`127.0.0.1:${proxy.port}`],
    onRejoin: (n) => void n.store.join('chat:r', { client: 'b1', user: 'bee' }).catch(() => {}),
  });
  await until(() => a.store.join('chat:r', { client: 'a1', user: null }).then(() => true), { timeoutMs: 20_000, intervalMs: 200, what: 'a to join a1' });
  await until(() => b.store.join('chat:r', { client: 'b1', user: 'bee' }).then(() => true), { timeoutMs: 20_000, intervalMs: 200, what: 'b to join b1' });
  await untilListed(a.store, 'chat:r', ['a1', 'b1']);

  proxy.cut();
  await untilListed(a.store, 'chat:r', ['a1'], (TTL + 10) * 1000);
  await until(() => a.departed.length > 0, { timeoutMs: 10_000, what: 'a to report b1 departed' });
  proxy.restore();
  // b reads the marker of its incarnation, registers again and rejoins: a lists b1 again.
  await until(() => b.rejoins > 0, { timeoutMs: 40_000, intervalMs: 100, what: 'b to be told to rejoin' });
  await untilListed(a.store, 'chat:r', ['a1', 'b1'], 20_000);
  await untilListed(b.store, 'chat:r', ['a1', 'b1'], 20_000);
  assert.deepEqual(a.departed, ['chat:r/b1']);
  assert.deepEqual(b.departed, []);
  assert.equal(b.rejoins, 1);
  assert.equal(a.rejoins, 0);
});
