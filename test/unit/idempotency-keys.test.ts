/**
 * The in-process idempotency keys (src/stores/idempotency.ts) the memory store and the Kafka log
 * hold: a key answers its first publish within its window only, per channel, and what they hold
 * is capped in bytes, the oldest going first.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { IdempotencyKeys } from '../../src/stores/idempotency.js';

test('a key answers its first publish until its window ends, per channel', () => {
  const keys = new IdempotencyKeys();
  keys.remember('a', 'k', { offset: 7, epoch: 'e' }, 1000);
  assert.deepEqual(keys.find('a', 'k', 999), { offset: 7, epoch: 'e' });
  assert.equal(keys.find('b', 'k', 999), undefined, 'another channel');
  assert.equal(keys.find('a', 'k2', 999), undefined, 'another key');
  assert.equal(keys.peek('a', 'k', 1000), undefined, 'not at its end');
  assert.equal(keys.size, 1, 'a peek drops nothing');
  assert.equal(keys.find('a', 'k', 1000), undefined);
  assert.equal(keys.size, 0, 'a find drops the expired keys in front');
});

test('past the byte cap the oldest keys go first, never the one just written', () => {
  const keys = new IdempotencyKeys(1000);
  for (let i = 0; i < 50; i++) keys.remember('chan', `key-${i}`, { offset: i + 1, epoch: 'e' }, 10_000);
  assert.ok(keys.size > 0 && keys.size < 50, `${keys.size} held`);
  assert.deepEqual(keys.find('chan', 'key-49', 0), { offset: 50, epoch: 'e' });
  assert.equal(keys.find('chan', 'key-0', 0), undefined, 'the oldest were forgotten');
  const tiny = new IdempotencyKeys(1);
  tiny.remember('c', 'only', { offset: 1, epoch: 'e' }, 10);
  assert.deepEqual(tiny.find('c', 'only', 0), { offset: 1, epoch: 'e' });
});
