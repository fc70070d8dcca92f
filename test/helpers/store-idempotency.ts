/**
 * The channel store's idempotency keys in the store conformance suite
 * (test/helpers/store-conformance.ts; OutgoingMessage.idempotency in src/stores/store.ts):
 * registered inside each store's channel-store describe, whose hooks open and close the nodes.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sleep } from '../../harness/wait.js';
import type { StoreHarness } from './store-harnesses.js';
import { channel, open } from './store-suite.js';

export function defineIdempotencyKeys(h: StoreHarness): void {
  test('idempotency keys: a repeat on any node stores nothing and is answered with the first offset; two nodes racing one key store one; another channel is its own', async () => {
    const [a, b] = await open(h.spec(), 2);
    const ch = channel();
    const other = channel();
    await a!.join(ch);
    await a!.join(other);
    const first = await a!.publishKeyed(ch, '"k1"', 'order-1');
    assert.equal(first.duplicate, undefined);
    const again = await b!.publishKeyed(ch, '"k1 again"', 'order-1');
    assert.deepEqual([again.duplicate, again.offset, again.epoch], [true, first.offset, first.epoch], 'the repeat, on another node: the first offset');
    const elsewhere = await b!.publishKeyed(other, '"k1 elsewhere"', 'order-1');
    assert.equal(elsewhere.duplicate, undefined, 'the same key in another channel is another message');
    const race = await Promise.all([a!, b!, a!, b!].map((n, i) => n.publishKeyed(ch, `"race ${i}"`, 'order-2')));
    const stored = race.filter((r) => r.duplicate !== true);
    assert.equal(stored.length, 1, `racing one key: one stored (${JSON.stringify(race)})`);
    assert.ok(race.every((r) => r.offset === stored[0]!.offset && r.epoch === stored[0]!.epoch), `every racer answered the stored offset (${JSON.stringify(race)})`);
    const after = await b!.publishKeyed(ch, '"k3"', 'order-3');
    await a!.until(() => a!.delivered(ch).some((m) => m.data === '"k3"'), 'the message after the race');
    const winner = JSON.stringify(`race ${race.indexOf(stored[0]!)}`);
    assert.deepEqual(a!.delivered(ch).map((m) => m.data), ['"k1"', winner, '"k3"'], 'each key delivered once');
    assert.deepEqual(a!.delivered(ch).map((m) => m.offset), [first.offset, stored[0]!.offset, after.offset]);
    assert.deepEqual((await b!.read(ch, { limit: 10 })).messages.map((m) => m.data), ['"k1"', winner, '"k3"'], 'history holds each once');
    await a!.until(() => a!.delivered(other).length === 1, 'the other channel\'s message');
  });

  test('idempotency keys hold with --history-size 0, and a key published again after its window is a new message', async () => {
    const [a, b] = await open(h.spec({ historySize: 0, idempotencyWindow: 1 }), 2);
    const ch = channel();
    await a!.join(ch);
    const first = await a!.publishKeyed(ch, '"t1"', 'tick');
    const again = await b!.publishKeyed(ch, '"t1"', 'tick');
    assert.deepEqual([again.duplicate, again.offset], [true, first.offset], 'no history, the key still holds');
    await sleep(2500);
    const later = await b!.publishKeyed(ch, '"t2"', 'tick');
    assert.equal(later.duplicate, undefined, 'after the 1 s window the key stores again');
    assert.ok(later.offset > first.offset);
    await a!.until(() => a!.delivered(ch).length >= 2, 'two deliveries');
    assert.deepEqual(a!.delivered(ch).map((m) => m.data), ['"t1"', '"t2"']);
  });
}
