/**
 * Per-name state is bounded (issue 24): the memory store keeps nothing for a read of an empty
 * channel, caps its bytes with --history-max-bytes (least recently written evicted whole), sweeps
 * expired logs without a publish, and the history gauges' map is bounded with --history-ttl 0.
 */
import assert from 'node:assert/strict';
import { mock, test } from 'node:test';
import { CHANNEL_OVERHEAD_BYTES, MemoryChannelStore, MESSAGE_OVERHEAD_BYTES, type DropReason } from '../../src/brokers/memory/stores.js';
import { HistoryMetrics, MAX_HISTORY_CHANNELS } from '../../src/channels/metrics.js';
import { MetricsRegistry } from '../../src/metrics.js';

interface Built {
  readonly store: MemoryChannelStore;
  readonly dropped: Array<[string, DropReason]>;
}

function memoryStore(options: { historySize?: number; historyTtl?: number; historyMaxBytes?: number } = {}): Built {
  const dropped: Array<[string, DropReason]> = [];
  const store = new MemoryChannelStore(
    {},
    {
      historySize: options.historySize ?? 100,
      historyTtl: options.historyTtl ?? 0,
      historyMaxBytes: options.historyMaxBytes ?? 0,
      connected: () => true,
      deliver: () => {},
      dropped: (channel, reason) => dropped.push([channel, reason]),
    },
  );
  return { store, dropped };
}

function publish(store: MemoryChannelStore, channel: string, data: string) {
  return store.publish({ channel, topic: `t:ch:${channel}`, origin: 'n1', data });
}

/** What one log of `channel` holding `messages` counts against the cap. */
function logBytes(channel: string, ...messages: string[]): number {
  return CHANNEL_OVERHEAD_BYTES + 2 * channel.length + messages.reduce((n, m) => n + Buffer.byteLength(m) + MESSAGE_OVERHEAD_BYTES, 0);
}

test('reads of channels that hold nothing keep nothing, and answer one epoch per channel until a log comes', async () => {
  const { store } = memoryStore();
  const first = await store.read('empty:0', { limit: 10 });
  assert.deepEqual({ offset: first.offset, messages: first.messages, covered: first.covered }, { offset: 0, messages: [], covered: true });
  for (let i = 0; i < 10_000; i++) {
    await store.read(`empty:${i}`, { limit: 10 });
    await store.read(`other:${i}`, { since: { offset: 0, epoch: 'x' } });
  }
  assert.equal(store.size, 0, 'no log for a read');
  assert.equal(store.bytes, 0);

  // A subscriber of the still-empty channel recovers at its position, with nothing missed.
  const again = await store.read('empty:0', { since: { offset: 0, epoch: first.epoch } });
  assert.equal(again.epoch, first.epoch);
  assert.equal(again.covered, true);

  // The first publish makes the log in that epoch: the subscriber at offset 0 recovers message 1.
  const published = await publish(store, 'empty:0', '"hello"');
  assert.deepEqual(published, { offset: 1, epoch: first.epoch });
  const recovered = await store.read('empty:0', { since: { offset: 0, epoch: first.epoch } });
  assert.equal(recovered.covered, true);
  assert.deepEqual(recovered.messages, [{ offset: 1, data: '"hello"' }]);
  assert.equal(store.size, 1);
  assert.equal(store.bytes, logBytes('empty:0', '"hello"'), 'bytes: data plus fixed overheads');
});

test('--history-max-bytes: past the cap the least recently written channels are evicted whole', async () => {
  const data = `"${'x'.repeat(1000)}"`;
  const one = logBytes('c0', data);
  const { store, dropped } = memoryStore({ historyMaxBytes: 3 * one });
  await publish(store, 'c0', data);
  const b = await publish(store, 'c1', data);
  await publish(store, 'c2', data);
  assert.equal(store.bytes, 3 * one);
  assert.deepEqual(dropped, []);
  // c0 is written again (it grows past one message's worth): the least recently written is now c1.
  await publish(store, 'c0', data);
  assert.deepEqual(dropped, [['c1', 'evicted']]);
  await publish(store, 'c3', data);
  assert.deepEqual(dropped, [
    ['c1', 'evicted'],
    ['c2', 'evicted'],
  ]);
  assert.ok(store.bytes <= 3 * one, `${store.bytes} within the cap`);
  // c0 kept both its messages: it was written more recently than c1 and c2.
  assert.equal((await store.read('c0', { limit: 10 })).messages.length, 2);

  // A recovery across the eviction: a new epoch, recovered:false; never a short answer.
  const c1 = await store.read('c1', { since: { offset: 1, epoch: b.epoch } });
  assert.equal(c1.covered, false);
  assert.equal(c1.offset, 0);
  const next = await publish(store, 'c1', data);
  assert.equal(next.offset, 1);
  assert.notEqual(next.epoch, b.epoch, 'the evicted channel starts a new epoch');
  const across = await store.read('c1', { since: { offset: 1, epoch: b.epoch } });
  assert.equal(across.covered, false);
});

test('--history-max-bytes: a channel alone past the cap loses its oldest messages, not its position', async () => {
  const data = `"${'y'.repeat(500)}"`;
  const { store } = memoryStore({ historyMaxBytes: logBytes('big', data, data, data) });
  let epoch = '';
  for (let i = 0; i < 10; i++) epoch = (await publish(store, 'big', data)).epoch;
  const page = await store.read('big', { limit: 100 });
  assert.deepEqual(
    page.messages.map((m) => m.offset),
    [8, 9, 10],
  );
  assert.equal(page.offset, 10);
  assert.equal((await store.read('big', { since: { offset: 2, epoch } })).covered, false, 'recovery from before the cut is refused');
  assert.equal((await store.read('big', { since: { offset: 8, epoch } })).covered, true);
});

test('--history-max-bytes 0 keeps everything; the byte count follows --history-size trimming', async () => {
  const { store, dropped } = memoryStore({ historySize: 2 });
  for (let i = 0; i < 5; i++) await publish(store, 'room', `"m${i}"`);
  assert.equal(store.bytes, logBytes('room', '"m3"', '"m4"'));
  for (let i = 0; i < 1000; i++) await publish(store, `room:${i}`, '"x"');
  assert.equal(store.size, 1001);
  assert.deepEqual(dropped, []);
});

test('--history-ttl: expired logs go without a publish to them, a bounded step per read or publish; with 0 only the cap bounds them', async (t) => {
  mock.timers.enable({ apis: ['Date'], now: 1_000_000 });
  t.after(() => mock.timers.reset());
  const { store, dropped } = memoryStore({ historyTtl: 10 });
  for (let i = 0; i < 200; i++) await publish(store, `old:${i}`, '"x"');
  mock.timers.tick(5_000);
  await publish(store, 'young', '"y"');
  mock.timers.tick(6_000);
  // Reads of other channels sweep: 64 per step, oldest first, never the young one.
  await store.read('elsewhere');
  assert.equal(store.size, 201 - 64);
  for (let i = 0; i < 3; i++) await store.read('elsewhere');
  assert.equal(store.size, 1);
  assert.equal(dropped.length, 200);
  assert.ok(dropped.every(([channel, reason]) => channel.startsWith('old:') && reason === 'expired'));
  assert.equal(store.bytes, logBytes('young', '"y"'));

  // --history-ttl 0: nothing expires, and the byte cap is what bounds the logs.
  const forever = memoryStore({ historyTtl: 0, historyMaxBytes: 100 * logBytes('keep:00000', '"x"') });
  for (let i = 0; i < 10_000; i++) await publish(forever.store, `keep:${String(i).padStart(5, '0')}`, '"x"');
  mock.timers.tick(1_000_000_000);
  await forever.store.read('keep:09999');
  assert.equal(forever.store.size, 100);
  assert.equal((await forever.store.read('keep:09999', { limit: 1 })).offset, 1, 'the newest stay');
});

test('a dropped log changes the empty epoch of its slot: a position at offset 0 from before the drop is not taken for the new log', async () => {
  const { store } = memoryStore({ historyMaxBytes: logBytes('a', '"1"') });
  const empty = await store.read('a');
  await publish(store, 'a', '"1"');
  await publish(store, 'b', '"2"'); // evicts a
  const after = await publish(store, 'a', '"3"');
  assert.notEqual(after.epoch, empty.epoch);
  assert.equal((await store.read('a', { since: { offset: 0, epoch: empty.epoch } })).covered, false);
});

test('HistoryMetrics: the history gauges track at most MAX_HISTORY_CHANNELS channels, with --history-ttl 0 too', async () => {
  const metrics = new MetricsRegistry({ node: 'x' });
  const history = new HistoryMetrics(metrics.registry, { historyTtlMs: 0 });
  const extra = 1000;
  for (let i = 0; i < MAX_HISTORY_CHANNELS + extra; i++) history.channelSize(`ch:${i}`, 2);
  let body = (await metrics.render()).body;
  assert.match(body, new RegExp(`^fanout_history_channels ${MAX_HISTORY_CHANNELS}$`, 'm'));
  assert.match(body, new RegExp(`^fanout_history_messages ${2 * MAX_HISTORY_CHANNELS}$`, 'm'));
  // The oldest reported left first; a channel reported again moves to the back of the line.
  history.channelSize(`ch:${extra}`, 5);
  history.channelSize('new', 1);
  history.dropped(`ch:${extra}`, false);
  body = (await metrics.render()).body;
  assert.match(body, new RegExp(`^fanout_history_channels ${MAX_HISTORY_CHANNELS - 1}$`, 'm'));
  assert.match(body, new RegExp(`^fanout_history_messages ${2 * (MAX_HISTORY_CHANNELS - 2) + 1}$`, 'm'));

  assert.match(body, /^fanout_history_evictions_total 0$/m, 'an expired history is not an eviction');
  history.dropped('new', true);
  history.dropped(`ch:${extra + 2}`, true);
  body = (await metrics.render()).body;
  assert.match(body, /^fanout_history_evictions_total 2$/m);
  assert.match(body, new RegExp(`^fanout_history_channels ${MAX_HISTORY_CHANNELS - 3}$`, 'm'), 'an evicted channel leaves the totals');
});
