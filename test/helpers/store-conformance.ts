/**
 * One behaviour suite for every store, run unchanged against memory, Redis (as the bus and as a
 * separate --history), JetStream and Kafka with the real brokers, each store from its own file
 * (test/integration/store-conformance-<store>.test.ts) so that they run side by side. It tests
 * what the contracts in src/stores/store.ts promise, at the store interface: stores built as the
 * node builds them (store-nodes.ts) play the nodes of a cluster, a node that must die runs in a
 * process of its own and is SIGKILLed; then two real nodes on each store serve clients.
 *
 * A store missing a kind is not in its list (memory sweeps no dead node; JetStream and Kafka keep no
 * occupancy). Fault cases (broker restart, cut link, slow catch-up) use a private broker behind a
 * TCP proxy (store-faults.ts): not for memory (none) nor Redis as --history (the same store as
 * Redis as the bus).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { sleep } from '../../harness/wait.js';
import { connectChannels, publish, request, waitMessages } from './channels.js';
import { closeNodes, startNode, uniquePrefix, waitNodesReady } from './nodes.js';
import { storeHarnesses, type StoreHarness } from './store-harnesses.js';
import { defineNamespaceNodes } from './store-namespaces.js';
import { defineLatestNodes } from './store-latest.js';
import { channel, closeOpened, crossings, entries, open, openChild, opened, scoped, texts } from './store-suite.js';
import { closeAll, type TestClient } from './ws-client.js';
import { defineRevocations } from './store-revocations.js';
import { defineFaults } from './store-faults.js';
import { defineIdempotencyKeys } from './store-idempotency.js';

/** Defines the whole suite for each harness of `storeHarnesses()` whose name starts with `store`. */
export function defineStoreConformance(store: string): void {
  const harnesses = storeHarnesses().filter((h) => h.name.startsWith(store));
  assert.ok(harnesses.length > 0, `no store harness named ${store}`);
  // Harnesses have prefixes of their own (Redis as the bus and as a separate --history): side by side.
  describe(`stores: ${store}`, { concurrency: true }, () => {
    for (const h of harnesses) defineStore(h);
  });
}

/**
 * The fault cases use a private broker and prefixes of their own, so they run beside the rest
 * (which goes one part at a time: a footprint check counts what the store holds under a
 * prefix): the store's file then takes about as long as its longest part.
 */
function defineStore(h: StoreHarness): void {
  describe(`store: ${h.name}`, { concurrency: true }, () => {
    scoped(() => describe(`store contracts and real nodes: ${h.name}`, { concurrency: 1 }, () => {
      describe(`channel store: ${h.name}`, { timeout: 60_000 }, () => defineChannelStore(h));
      if (h.presence) describe(`presence store: ${h.name}${h.sweeps ? '' : ' (no dead-node sweep: a node cannot die without its clients)'}`, { timeout: 60_000 }, () => definePresence(h));
      if (h.occupancy) describe(`occupancy store: ${h.name}${h.sweeps ? '' : ' (no dead-node sweep)'}`, { timeout: 60_000 }, () => defineOccupancy(h));
      describe(`revocation store: ${h.name}`, { timeout: 60_000 }, () => defineRevocations(h));
      describe(`real nodes on the store: ${h.name}`, { timeout: 60_000 }, () => {
        defineNodes(h);
        defineNamespaceNodes(h);
        defineLatestNodes(h);
      });
    }));
    if (h.faults) scoped(() => describe(`store faults: ${h.name}`, { concurrency: 1, timeout: 120_000 }, () => defineFaults(h, h.faults!)));
  });
}

function defineChannelStore(h: StoreHarness): void {
  before(() => h.setup());
  after(async () => {
    await closeOpened();
    await h.teardown();
  });

  test('offsets increase per channel; every node delivers in that order exactly what publishes acknowledged, and a read returns it', async () => {
    const [a, b] = await open(h.spec(), 2);
    const ch = channel();
    await a!.join(ch);
    await b!.join(ch);
    const acks = await Promise.all([...texts('a', 10).map((t) => a!.publish(ch, t)), ...texts('b', 10).map((t) => b!.publish(ch, t))]);
    const sent = new Map(acks.map((ack, i) => [ack.offset, [...texts('a', 10), ...texts('b', 10)][i]!]));
    assert.equal(sent.size, 20, 'every publish got its own offset');
    assert.equal(new Set(acks.map((x) => x.epoch)).size, 1, 'one epoch');
    const order = [...sent.keys()].sort((x, y) => x - y);
    for (const n of [a!, b!]) {
      await n.until(() => n.delivered(ch).length >= 20, '20 deliveries');
      assert.deepEqual(n.delivered(ch).map((m) => m.offset), order, 'delivered once each, in offset order');
      assert.deepEqual(n.delivered(ch).map((m) => m.data), order.map((o) => sent.get(o)));
    }
    const read = await b!.read(ch, { limit: 100 });
    assert.deepEqual(read.messages.map((m) => [m.offset, m.data]), order.map((o) => [o, sent.get(o)]));
    assert.equal(read.offset, order.at(-1));
    assert.equal(read.epoch, acks[0]!.epoch);
  });

  test('a read of a channel that holds nothing answers no messages, and a history read, a recovery check or a presence list creates nothing', async () => {
    const [a] = await open(h.spec(), 1);
    const baseline = await a!.footprint();
    for (let i = 0; i < 25; i++) {
      const ch = channel();
      const read = await a!.read(ch, { limit: 10 });
      assert.deepEqual([read.messages.length, read.more, read.covered], [0, false, true]);
      const since = await a!.read(ch, { since: { offset: read.offset, epoch: read.epoch } });
      assert.equal(since.messages.length, 0);
      assert.deepEqual(await a!.stores.presence.list(ch), []);
    }
    assert.equal(await a!.footprint(), baseline, 'reads of empty channels left state behind');
  });

  test('a subscription joining an empty channel gets the position the first publish continues, and recovers from it', async () => {
    const [a, b] = await open(h.spec(), 2);
    const ch = channel();
    const joined = await a!.join(ch);
    assert.equal(joined.messages.length, 0);
    const ack = await b!.publish(ch, '"first"');
    assert.equal(ack.epoch, joined.epoch, 'the first publish keeps the epoch a subscriber was given');
    assert.ok(ack.offset > joined.offset);
    await a!.until(() => a!.delivered(ch).length === 1, 'the first message');
    const recovered = await b!.read(ch, { since: { offset: joined.offset, epoch: joined.epoch } });
    assert.deepEqual([recovered.covered, recovered.messages.map((m) => m.data)], [true, ['"first"']]);
  });

  test('recovery with since: every message after it; nothing at the head; covered:false for another epoch or a position past the head', async () => {
    const [a] = await open(h.spec(), 1);
    const ch = channel();
    const acks = [];
    for (const t of texts('r', 5)) acks.push(await a!.publish(ch, t));
    const { epoch } = acks[0]!;
    const after2 = await a!.read(ch, { since: { offset: acks[1]!.offset, epoch } });
    assert.deepEqual([after2.covered, after2.messages.map((m) => m.offset)], [true, acks.slice(2).map((x) => x.offset)]);
    const head = await a!.read(ch, { since: { offset: acks[4]!.offset, epoch } });
    assert.deepEqual([head.covered, head.messages.length, head.offset], [true, 0, acks[4]!.offset]);
    const other = await a!.read(ch, { since: { offset: acks[1]!.offset, epoch: 'ffffffffffffffff' } });
    assert.deepEqual([other.covered, other.messages.length], [false, 0]);
    const past = await a!.read(ch, { since: { offset: acks[4]!.offset + 1000, epoch } });
    assert.deepEqual([past.covered, past.messages.length], [false, 0]);
  });

  test('paging back with before and more, within maxBytes; before 0, 1, at the oldest or huge gets a plain answer', async () => {
    const [a] = await open(h.spec(), 1);
    const ch = channel();
    const offsets: number[] = [];
    for (const t of texts('p', 10)) offsets.push((await a!.publish(ch, t)).offset);
    const pages: number[][] = [];
    let page = await a!.read(ch, { limit: 4 });
    pages.push(page.messages.map((m) => m.offset));
    while (page.more) {
      page = await a!.read(ch, { limit: 4, before: page.messages[0]!.offset });
      pages.push(page.messages.map((m) => m.offset));
    }
    assert.deepEqual(pages, [offsets.slice(6), offsets.slice(2, 6), offsets.slice(0, 2)]);
    const small = await a!.read(ch, { limit: 10, maxBytes: 1 });
    assert.deepEqual([small.messages.map((m) => m.offset), small.more], [offsets.slice(9), true], 'at least one message, then more');
    for (const edge of [0, 1, offsets[0]!]) {
      const none = await a!.read(ch, { limit: 4, before: edge });
      assert.deepEqual([none.messages.length, none.more], [0, false], `before ${edge}`);
    }
    const huge = await a!.read(ch, { limit: 4, before: Number.MAX_SAFE_INTEGER });
    assert.deepEqual(huge.messages.map((m) => m.offset), offsets.slice(6));
  });

  test('--history-size: a read holds the last N; recovery from before the oldest kept says covered:false', async () => {
    const [a] = await open(h.spec({ historySize: 3 }), 1);
    const ch = channel();
    const acks = [];
    for (const t of texts('s', 6)) acks.push(await a!.publish(ch, t));
    const { epoch } = acks[0]!;
    const read = await a!.read(ch, { limit: 10 });
    assert.deepEqual([read.messages.map((m) => m.offset), read.more], [acks.slice(3).map((x) => x.offset), false]);
    assert.equal((await a!.read(ch, { since: { offset: acks[2]!.offset, epoch } })).covered, true, 'the gap is still held');
    const lost = await a!.read(ch, { since: { offset: acks[1]!.offset, epoch } });
    assert.deepEqual([lost.covered, lost.messages.length], [false, 0]);
  });

  test('--history-ttl: history goes after the ttl without messages, and recovery across it says covered:false', async () => {
    const [a] = await open(h.spec({ historyTtl: 1 }), 1);
    const ch = channel();
    const ack = await a!.publish(ch, '"old"');
    let read = await a!.read(ch, { limit: 10 });
    assert.equal(read.messages.length, 1);
    await a!.until(async () => (read = await a!.read(ch, { limit: 10 })).messages.length === 0, 'history to expire');
    const since = await a!.read(ch, { since: { offset: ack.offset - 1, epoch: ack.epoch } });
    assert.deepEqual([since.covered, since.messages.length], [false, 0]);
  });

  test('once-marks: a message handed over again is refused, stored and delivered once, also from two writers at the same moment', async () => {
    const [a, b] = await open(h.spec(), 2);
    const ch = channel();
    await a!.join(ch);
    const first = await a!.publish(ch, '"m5"', { source: 'p0', position: 5 });
    assert.equal(first.duplicate, undefined);
    const again = await b!.publish(ch, '"m5"', { source: 'p0', position: 5 });
    assert.equal(again.duplicate, true, 'the same position again');
    const both = await Promise.all([a!, b!].map((n) => n.publish(ch, '"m6"', { source: 'p0', position: 6 })));
    assert.equal(both.filter((r) => r.duplicate !== true).length, 1, `two writers at once: one stored (${JSON.stringify(both)})`);
    const next = await b!.publish(ch, '"m7"', { source: 'p0', position: 7 });
    await a!.until(() => a!.delivered(ch).some((m) => m.data === '"m7"'), 'the next position');
    assert.deepEqual(a!.delivered(ch).map((m) => m.data), ['"m5"', '"m6"', '"m7"'], 'each once');
    assert.deepEqual((await b!.read(ch, { limit: 10 })).messages.map((m) => m.data), ['"m5"', '"m6"', '"m7"']);
    assert.equal(next.duplicate, undefined);
  });

  defineIdempotencyKeys(h);
}

function definePresence(h: StoreHarness): void {
  before(() => h.setup());
  after(async () => {
    await closeOpened();
    await h.teardown();
  });

  test('join and leave on any node; every node lists the same clients, with their meta; a closed node\'s clients are gone', async () => {
    const [a, b, c] = await open(h.spec(), 3);
    const ch = channel();
    await a!.stores.presence.join(ch, { client: 'ca', user: 'ua', meta: { name: 'Ann', tags: ['x'] } });
    await b!.stores.presence.join(ch, { client: 'cb', user: null });
    for (const n of [a!, b!, c!]) await n.until(async () => entries(await n.stores.presence.list(ch)).join() === 'ca:ua:{"name":"Ann","tags":["x"]},cb:null', 'both listed');
    await a!.stores.presence.leave(ch, 'ca');
    for (const n of [b!, c!]) await n.until(async () => entries(await n.stores.presence.list(ch)).join() === 'cb:null', 'ca gone');
    await b!.close();
    opened.splice(opened.indexOf(b!), 1);
    await c!.until(async () => (await c!.stores.presence.list(ch)).length === 0, 'the closed node\'s client gone');
  });

  test('a join made before the store first reached its broker is kept: the start-up sweep of an earlier process\'s entries does not take it', async () => {
    const ch = channel();
    let early: Promise<void> | undefined;
    const [a] = await open(h.spec(), 1, (stores) => (early = stores.presence.join(ch, { client: 'early', user: 'ue' })));
    const [b] = await open(h.spec(), 1);
    await early;
    await b!.until(async () => entries(await b!.stores.presence.list(ch)).join() === 'early:ue', 'the early join listed');
    // Past a heartbeat: still there (a node that swept it away would show it gone now).
    await sleep(h.spec().presenceTtl * 1000 * 0.5);
    assert.deepEqual(entries(await a!.stores.presence.list(ch)), ['early:ue']);
  });

  if (h.sweeps) test('a dead node\'s clients are swept after --presence-ttl, reported departed by exactly one survivor', async () => {
    const spec = h.spec();
    const [a] = await open(spec, 2);
    const ch = channel();
    const { child, send } = await openChild(spec);
    await send({ join: { channel: ch, client: 'ghost', user: 'u' } });
    await a!.until(async () => entries(await a!.stores.presence.list(ch)).join() === 'ghost:u', 'the dead node\'s client listed');
    child.kill('SIGKILL');
    // Every live node of the prefix sweeps (those of earlier tests too): count them all.
    const departed = (): string[] => opened.filter((n) => n.spec.prefix === spec.prefix).flatMap((n) => n.departed.filter((d) => d.startsWith(`${ch}/`)));
    await a!.until(() => departed().length > 0, 'the sweep');
    await a!.until(async () => (await a!.stores.presence.list(ch)).length === 0, 'the list to be empty');
    // Both survivors sweep every beat: a second report would come within two ttls.
    await sleep(2 * spec.presenceTtl * 1000);
    assert.deepEqual(departed(), [`${ch}/ghost`]);
  });
}

function defineOccupancy(h: StoreHarness): void {
  before(() => h.setup());
  after(async () => {
    await closeOpened();
    await h.teardown();
  });

  test('crossings 0↔1 are reported once across nodes, also when nodes write at the same moment', async () => {
    const [a, b] = await open(h.spec(), 2);
    const ch = channel();
    const up = await Promise.all([a!, b!].map((n) => n.stores.occupancy!.update({ channel: ch, subscribers: 1, users: [['u', 1]] })));
    assert.deepEqual(crossings(up.flat(), ch), ['channel_occupied', 'member_added:u']);
    assert.deepEqual(crossings(await a!.stores.occupancy!.update({ channel: ch, subscribers: 2, users: [['u', 2]] }), ch), []);
    const down = await Promise.all([a!, b!].map((n) => n.stores.occupancy!.update({ channel: ch, subscribers: 0, users: [['u', 0]] })));
    assert.deepEqual(crossings(down.flat(), ch), ['channel_vacated', 'member_removed:u']);
  });

  if (h.sweeps) test('a dead node\'s counts are swept: its crossings are reported once, by one survivor', async () => {
    const spec = h.spec();
    const [a] = await open(spec, 2);
    const ch = channel();
    const { child, send } = await openChild(spec);
    await send({ occupancy: { channel: ch, subscribers: 1, users: [['u', 1]] } });
    child.kill('SIGKILL');
    const swept = (): string[] => crossings(opened.filter((n) => n.spec.prefix === spec.prefix).flatMap((n) => n.swept), ch);
    await a!.until(() => swept().length >= 2, 'the sweep');
    await sleep(2 * spec.presenceTtl * 1000);
    assert.deepEqual(swept(), ['channel_vacated', 'member_removed:u']);
  });
}

function defineNodes(h: StoreHarness): void {
  test('two nodes: a subscriber on one gets what the other acknowledged, in order; history with any before gets a documented answer, never a store\'s error text', async () => {
    const prefix = uniquePrefix('scn');
    const { config, broker } = h.node(prefix);
    const nodes = [await startNode({ ...config, nodeId: 'sc1' }, broker), await startNode({ ...config, nodeId: 'sc2' }, broker)];
    const clients: TestClient[] = [];
    try {
      await waitNodesReady(nodes, 30_000);
      const [pub, sub] = [await connectChannels(nodes[0]!), await connectChannels(nodes[1]!)];
      clients.push(pub, sub);
      const ch = channel();
      assert.equal((await request(sub, { type: 'subscribe', channel: ch }, 15_000)).type, 'subscribed');
      const acks: number[] = [];
      for (let i = 0; i < 3; i++) acks.push(await publish(pub, ch, i));
      assert.deepEqual((await waitMessages(sub, ch, 3, 15_000)).map((m) => [m.offset, m.data]), acks.map((o, i) => [o, i]));
      for (const before of [0, 1, Number.MAX_SAFE_INTEGER]) {
        const reply = await request(sub, { type: 'history', channel: ch, limit: 10, before }, 15_000);
        assert.equal(reply.type, 'history', `before ${before}: ${JSON.stringify(reply)}`);
        assert.deepEqual([(reply.messages as unknown[]).length, reply.more], [before > 1 ? 3 : 0, undefined]);
      }
      for (const before of [-1, 1.5, '7', 1e300, null]) {
        const reply = await request(sub, { type: 'history', channel: ch, before }, 15_000);
        assert.deepEqual([reply.type, reply.code], ['error', 'bad_request'], `before ${JSON.stringify(before)}`);
      }
    } finally {
      closeAll(clients);
      await closeNodes(nodes);
    }
  });
}
