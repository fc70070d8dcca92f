// The Kafka history index (brokers/kafka/log-index.ts): what it vouches for after size and age limits
// and after the consumer skipped records. Records come in as the consumer would hand them over.
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { loadKafkaClient } from '../../src/brokers/kafka/client.js';
import { KafkaIndex } from '../../src/brokers/kafka/log-index.js';
import { fanoutOffset, partitionOf, topicEpoch } from '../../src/brokers/kafka/log.js';

// partitionOf uses the client's murmur2, loaded when a session opens (here, none does).
before(() => loadKafkaClient());

test('Kafka index: a channel keeps its last --history-size messages; recovery is complete from the newest one dropped', () => {
  const index = new KafkaIndex({ historySize: 3, historyTtl: 0 });
  index.open(0, 1);
  // Two channels share partition 0: each one's offsets jump.
  for (let offset = 1; offset <= 10; offset++) index.append(0, offset, 1000, offset % 2 ? 'odd' : 'even', `"m${offset}"`);
  const odd = index.view('odd', 0);
  assert.deepEqual(odd.messages.map((m) => m.offset), [5, 7, 9]);
  assert.equal(odd.completeAfter, 3, 'offset 3 was dropped: from 3 on every message is there');
  const even = index.view('even', 0);
  assert.deepEqual(even.messages.map((m) => m.data), ['"m6"', '"m8"', '"m10"']);
  assert.equal(even.completeAfter, 4);
  // A channel with no message: complete from the start of the window.
  assert.deepEqual(index.view('quiet', 0), { messages: [], completeAfter: 0 });
});

test('Kafka index: the window starts where the node began to read, and moves up past records the consumer skipped', () => {
  const index = new KafkaIndex({ historySize: 10, historyTtl: 0 });
  index.open(2, 41);
  index.append(2, 41, 1, 'room', '1');
  index.append(2, 42, 1, 'room', '2');
  assert.equal(index.view('room', 2).completeAfter, 40, 'messages before offset 41 were never read');
  // The log no longer had 43…59: the index cannot vouch for anything before 60.
  index.skipTo(2, 60);
  index.append(2, 60, 1, 'room', '3');
  const room = index.view('room', 2);
  assert.deepEqual(room.messages.map((m) => m.offset), [60]);
  assert.equal(room.completeAfter, 59);
  // Asked on another partition (the topic has more partitions now): nothing known there.
  assert.deepEqual(index.view('room', 3), { messages: [], completeAfter: Infinity });
});

test('Kafka index: messages older than --history-ttl leave, and the window floor follows them', () => {
  const index = new KafkaIndex({ historySize: 100, historyTtl: 10 });
  index.open(0, 1);
  index.append(0, 1, 0, 'a', '1');
  index.append(0, 2, 5_000, 'b', '2');
  index.append(0, 3, 9_000, 'a', '3');
  index.expire(12_000); // only offset 1 is older than 10 s
  assert.deepEqual(index.view('a', 0).messages.map((m) => m.offset), [3]);
  assert.equal(index.view('b', 0).messages.length, 1);
  index.expire(16_000); // offsets 1 and 2 are older than 10 s now
  assert.deepEqual(index.view('a', 0).messages.map((m) => m.offset), [3]);
  assert.equal(index.view('a', 0).completeAfter, 2);
  assert.deepEqual(index.view('b', 0), { messages: [], completeAfter: 2 });
  assert.equal(index.size, 1, 'a channel with nothing left is forgotten');
  index.expire(20_000);
  assert.equal(index.size, 0);
  assert.equal(index.view('a', 0).completeAfter, 3);
});

test('Kafka index: clear forgets everything (a new epoch); offsets and partitions are the Kafka ones', () => {
  const index = new KafkaIndex({ historySize: 5, historyTtl: 0 });
  index.open(0, 1);
  index.append(0, 1, 0, 'a', '1');
  index.clear();
  assert.equal(index.size, 0);
  assert.equal(fanoutOffset(0n), 1, 'the first record of a partition is offset 1: 0 still means before everything');
  // The default partitioner of the Java client: murmur2 of the key, positive, modulo the partitions.
  assert.equal(partitionOf(Buffer.from('fanout:ch:room'), 1), 0);
  const spread = new Set(Array.from({ length: 50 }, (_, i) => partitionOf(Buffer.from(`fanout:ch:c${i}`), 6)));
  assert.ok(spread.size > 3 && [...spread].every((p) => p >= 0 && p < 6), `keys spread over the partitions: ${[...spread]}`);
  assert.notEqual(topicEpoch({ id: 'x', partitions: 1 }), topicEpoch({ id: 'x', partitions: 2 }), 'more partitions: another epoch');
  assert.match(topicEpoch({ id: 'x', partitions: 1 }), /^[0-9a-f]{16}$/);
});

test('Kafka index: past --history-max-bytes the least recently written channels go whole, and recovery across that says not complete', () => {
  // Each message costs its data (2 bytes a character) plus 64, each channel 256 plus its name: 524 here, four fit.
  const index = new KafkaIndex({ historySize: 100, historyTtl: 0, historyMaxBytes: 2200 });
  index.open(0, 1);
  const data = '"' + 'x'.repeat(98) + '"';
  for (let offset = 1; offset <= 6; offset++) index.append(0, offset, 1, `c${offset}`, data);
  assert.ok(index.bytes <= 2200, `${index.bytes} bytes held`);
  assert.equal(index.evictions, 2, 'the two oldest channels went');
  assert.deepEqual(index.view('c1', 0).messages, []);
  // c1 (offset 1) and c2 (offset 2) went: nothing at or below 2 is vouched for, on any channel of the partition.
  assert.equal(index.view('c1', 0).completeAfter, 2);
  assert.deepEqual(index.view('c6', 0).messages.map((m) => m.offset), [6]);
  // Writing c3 again makes it the most recent: c4 goes for it, then c5 for c7.
  index.append(0, 7, 1, 'c3', data);
  index.append(0, 8, 1, 'c7', data);
  assert.deepEqual(index.view('c4', 0).messages, []);
  assert.deepEqual(index.view('c3', 0).messages.map((m) => m.offset), [3, 7]);
  assert.deepEqual(index.view('c5', 0).messages, []);
  assert.equal(index.size, 3);
});

test('Kafka index: names that hold nothing cost nothing (--history-size 0), and the drop is still known', () => {
  const index = new KafkaIndex({ historySize: 0, historyTtl: 0 });
  index.open(0, 1);
  for (let offset = 1; offset <= 1000; offset++) index.append(0, offset, 1, `n${offset}`, '1');
  assert.deepEqual([index.size, index.bytes], [0, 0]);
  assert.equal(index.view('n5', 0).completeAfter, 1000, 'every message was dropped: no recovery from before it');
});
