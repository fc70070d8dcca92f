// The pure parts of JetStream history: subject encoding, stream naming, the recovery rule, the duplicate window, a read's wait for the node to hand on what it read.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BusUnavailableError } from '../../src/errors.js';
import { HandedOn } from '../../src/brokers/nats/handed-on.js';
import { channelSubject, completeAfter, controlSubject, duplicateWindowMs, fromSubjectToken, liveSubjects, streamEpoch, streamLayout, subjectToken } from '../../src/brokers/nats/jetstream-layout.js';

test('any channel name is one subject token, and comes back unchanged', () => {
  const names = ['room', 'chat:ops', 'a.b.c', 'x*y>z', 'with space', '100%', 'ünïcødé', '', '%41', 'tab\there', 'a-b_c'];
  const tokens = names.map(subjectToken);
  for (const token of tokens) assert.match(token, /^[A-Za-z0-9_%-]+$/, `${token} has no subject separator or wildcard`);
  assert.deepEqual(tokens.map(fromSubjectToken), names);
  assert.equal(new Set(tokens).size, names.length, 'distinct names, distinct tokens');
  assert.equal(subjectToken('room'), 'room', 'plain names stay readable');
  assert.equal(subjectToken('chat:ops'), 'chat%3Aops');
});

test('a prefix names one stream and its subjects; the stream republishes each channel on the subjects nodes subscribe to', () => {
  const layout = streamLayout('fanout');
  assert.equal(layout.stream, 'FANOUT_fanout');
  assert.equal(layout.subjects, 'fanout-log.fanout.>');
  assert.deepEqual(layout.republish, { src: 'fanout-log.fanout.>', dest: 'fanout-live.fanout.>' });
  assert.equal(channelSubject(layout, 'chat:a.b'), 'fanout-log.fanout.m.chat%3Aa%2Eb');
  assert.equal(controlSubject(layout, 'chat:a.b'), 'fanout-log.fanout.c.chat%3Aa%2Eb');
  // The republish rule maps a stored subject to its live one token for token.
  const live = (stored: string): string => stored.replace(layout.republish.src.slice(0, -1), layout.republish.dest.slice(0, -1));
  assert.deepEqual(liveSubjects(layout, 'chat:a.b'), [live(channelSubject(layout, 'chat:a.b')), live(controlSubject(layout, 'chat:a.b'))]);
  assert.ok(liveSubjects(layout, 'x')[1].startsWith(layout.liveControlPrefix));
  // Prefixes a stream name cannot hold are replaced, with a hash so that they stay apart.
  const a = streamLayout('my.app');
  const b = streamLayout('my/app');
  assert.match(a.stream, /^FANOUT_my_app_[0-9a-f]{8}$/);
  assert.notEqual(a.stream, b.stream);
  assert.notEqual(a.subjects, b.subjects);
});

test('the epoch is the stream: same name and creation time, same epoch; a re-created stream, another', () => {
  const e1 = streamEpoch('FANOUT_x', '2026-12-03T10:00:00.000000001Z');
  assert.match(e1, /^[0-9a-f]{16}$/);
  assert.equal(streamEpoch('FANOUT_x', '2026-12-03T10:00:00.000000001Z'), e1);
  assert.notEqual(streamEpoch('FANOUT_x', '2026-12-03T10:05:00Z'), e1);
});

test('the recovery rule: complete after the channel\'s oldest retained message, and further back only when nothing can have been dropped', () => {
  // The subject is full (max_msgs_per_subject reached): only from just before its oldest message.
  assert.equal(completeAfter({ first: 120, count: 3, perSubject: 3, streamFirst: 1 }), 119);
  // Not full and the stream dropped nothing: from the start.
  assert.equal(completeAfter({ first: 120, count: 2, perSubject: 3, streamFirst: 1 }), 0);
  // Not full, but the stream aged out messages up to 99: back to 99 only.
  assert.equal(completeAfter({ first: 120, count: 2, perSubject: 3, streamFirst: 100 }), 99);
  // The stream aged out past the channel's first message: from just before it.
  assert.equal(completeAfter({ first: 120, count: 2, perSubject: 3, streamFirst: 150 }), 119);
  // No message of the channel held: complete after what the stream still holds.
  assert.equal(completeAfter({ first: undefined, count: 0, perSubject: 3, streamFirst: 40 }), 39);
});

test('the stream remembers message ids for the longest idempotency window, within --history-ttl', () => {
  assert.equal(duplicateWindowMs(3600, 0), 3_600_000, 'no max_age: the window as asked');
  assert.equal(duplicateWindowMs(3600, 300), 300_000, 'cut to max_age (JetStream refuses a longer one)');
  assert.equal(duplicateWindowMs(60, 300), 60_000);
  assert.equal(duplicateWindowMs(undefined, 0), 120_000, 'the server\'s own default when none is given');
});

test('a read that went past its fence waits until the node has handed the stream on up to its newest message, and gives up as unavailable', async () => {
  const handed = new HandedOn(50);
  handed.passed(10);
  await handed.reached(9);
  await handed.reached(10);
  const order: string[] = [];
  const waiting = handed.reached(12).then(() => order.push('read returns'));
  handed.passed(11);
  await Promise.resolve();
  assert.equal(order.length, 0, 'not before the message it read');
  handed.passed(13);
  order.push('handler of 13');
  await waiting;
  assert.deepEqual(order, ['handler of 13', 'read returns'], 'after the handler of the message that passed it (a microtask later)');
  await assert.rejects(handed.reached(14), (err: Error) => err instanceof BusUnavailableError);
  handed.reset();
  assert.equal(handed.last, 0, 'a new stream numbers from 1');
});
