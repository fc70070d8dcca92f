/**
 * The fault cases of the store conformance suite (test/helpers/store-conformance.ts), for the
 * stores with a broker process: a private broker behind a TCP proxy is killed and restarted, its
 * link cut, slowed and restored, and the stores must refuse meanwhile, lose nothing acknowledged
 * and write afterwards what they refused. The suite runs them beside its other parts (a private
 * broker and prefixes of their own).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { BusUnavailableError } from '../../src/errors.js';
import type { PublishResult, ReadResult } from '../../src/stores/store.js';
import { sleep } from '../../harness/wait.js';
import type { FaultRig, Limits, StoreHarness } from './store-harnesses.js';
import { channel, closeOpened, entries, open, refused } from './store-suite.js';

export function defineFaults(h: StoreHarness, start: () => Promise<FaultRig>): void {
  let rig: FaultRig;
  before(async () => void (rig = await start()));
  after(async () => {
    await closeOpened();
    await rig?.close();
  });
  const limits: Partial<Limits> = {};

  test('a broker killed and restarted on its data: calls are refused meanwhile; after it, publishes go on in the same epoch and recovery across the restart is covered', async () => {
    const [a, b] = await open(rig.spec('direct', limits), 2);
    const ch = channel();
    await b!.join(ch);
    const first = await a!.publish(ch, '"before"');
    await rig.down();
    let down = true;
    try {
      await refused(a!.publish(ch, '"lost"'));
      await refused(b!.read(ch, { limit: 10 }));
      await rig.up();
      down = false;
    } finally {
      if (down) await rig.up();
    }
    let next: PublishResult | undefined;
    await a!.until(async () => (next = await a!.publish(ch, '"after"').catch(() => undefined)) !== undefined, 'a publish after the restart', 60_000);
    assert.equal(next!.epoch, first.epoch, 'the broker kept the history: same epoch');
    let recovered: ReadResult | undefined;
    await b!.until(async () => (recovered = await b!.read(ch, { since: { offset: first.offset - 1, epoch: first.epoch } }).catch(() => undefined)) !== undefined, 'b reads again', 60_000);
    assert.equal(recovered!.covered, true);
    assert.deepEqual(recovered!.messages.map((m) => m.data).filter((d) => d !== '"after"'), ['"before"'], 'a refused publish is not stored');
    // Delivery is once while a node's route is up (what it missed meanwhile, the channel layer
    // catches up from history, as above): once b is back, it delivers live again.
    await b!.until(() => b!.route.connected, 'b connected again', 30_000);
    const live = async (): Promise<boolean> => {
      const ack = await a!.publish(ch, '"live"');
      return b!.until(() => b!.delivered(ch).some((m) => m.offset === ack.offset), 'live delivery', 2000).then(() => true, () => false);
    };
    await b!.until(live, 'live delivery after the restart', 30_000);
  });

  test('a link cut: the cut node is refused, the other goes on; once restored, the cut node reads and recovers everything, delivers again, and writes the joins it was refused', async () => {
    const [cut] = await open(rig.spec('proxied', limits), 1);
    const [other] = await open(rig.spec('direct', limits), 1);
    const ch = channel();
    await cut!.join(ch);
    const first = await other!.publish(ch, '"one"');
    await cut!.until(() => cut!.delivered(ch).length === 1, 'the first message');
    rig.proxy.cut();
    await cut!.until(async () => (await cut!.publish(ch, '"lost"').then(() => false, (err: unknown) => err instanceof BusUnavailableError)), 'the cut node refused');
    const joined = cut!.stores.presence.join(ch, { client: 'late', user: null }).catch(() => {});
    const second = await other!.publish(ch, '"two"');
    rig.proxy.restore();
    await joined;
    let since: ReadResult | undefined;
    await cut!.until(async () => (since = await cut!.read(ch, { since: { offset: first.offset, epoch: first.epoch } }).catch(() => undefined)) !== undefined, 'reads again', 30_000);
    assert.equal(since!.covered, true);
    assert.deepEqual(since!.messages.map((m) => m.offset).filter((o) => o <= second.offset).at(-1), second.offset);
    assert.ok(!since!.messages.some((m) => m.data === '"lost"'), 'a refused publish is not stored');
    const third = await other!.publish(ch, '"three"');
    await cut!.until(() => cut!.delivered(ch).some((m) => m.offset === third.offset), 'live delivery after the cut', 30_000);
    await other!.until(async () => (await other!.stores.presence.list(ch)).some((e) => e.client === 'late'), 'the join refused during the cut, written after', 30_000);
  });

  if (h.presence) test('a slow catch-up after a cut: the presence writes refused during the cut are written once the link is back, also when the first tries after it fail', async () => {
    // A long --presence-ttl: the slow link must not get the node swept (that is another case).
    const slowLimits = { ...limits, presenceTtl: 30 };
    const [cut] = await open(rig.spec('proxied', slowLimits), 1);
    const [other] = await open(rig.spec('direct', slowLimits), 1);
    const ch = channel();
    await cut!.stores.presence.join(ch, { client: 'before', user: null });
    rig.proxy.cut();
    await assert.rejects(cut!.stores.presence.join(ch, { client: 'during', user: null }), BusUnavailableError);
    // Back, but every byte takes 1.2 s each way for a while: catching up takes longer than the
    // stores' call timeouts (2–3 s), so the first writes after the reconnect may fail too.
    rig.proxy.latency(1200);
    rig.proxy.restore();
    try {
      await sleep(4000);
    } finally {
      rig.proxy.latency(0);
    }
    await other!.until(async () => (await other!.stores.presence.list(ch)).some((e) => e.client === 'during'), 'the refused join written after the slow catch-up', 30_000);
    assert.deepEqual(entries(await other!.stores.presence.list(ch)), ['before:null', 'during:null']);
  });

  test('a slow link: a read on the slow node answers every message acknowledged before it, from any node', async () => {
    const [slow] = await open(rig.spec('proxied', limits), 1);
    const [other] = await open(rig.spec('direct', limits), 1);
    const ch = channel();
    rig.proxy.latency(150);
    try {
      for (let i = 0; i < 3; i++) {
        const ack = await other!.publish(ch, JSON.stringify(i));
        const read = await slow!.read(ch, { limit: 10 });
        assert.equal(read.messages.at(-1)?.offset, ack.offset, `read ${i} holds the message acknowledged before it`);
      }
    } finally {
      rig.proxy.latency(0);
    }
  });
}
