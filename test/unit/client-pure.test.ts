// The SDK's pure parts: reconnect delays, the once-and-in-order cursor, the close-code rule, the upgrade check's URL and answer.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BACKOFF_DEFAULTS, backoffDelay, backoffOptions } from '../../client/backoff.js';
import { ChannelCursor } from '../../client/cursor.js';
import { endpointUrl } from '../../client/client.js';
import { checkUrl, refusalOf } from '../../client/refusal.js';
import { CLOSE_CODES, shouldReconnect, shouldRetryUpgrade, UPGRADE_STATUSES } from '../../src/protocol/codes.js';
import * as sdk from '../../client/index.js';

test('backoff doubles from 250 ms up to the 10 s cap', () => {
  const noJitter = { ...BACKOFF_DEFAULTS, jitter: 0 };
  assert.deepEqual(
    [0, 1, 2, 3, 4, 5, 6, 7, 8].map((n) => backoffDelay(n, noJitter)),
    [250, 500, 1000, 2000, 4000, 8000, 10000, 10000, 10000],
  );
  assert.equal(backoffDelay(1000, noJitter), 10000, 'huge attempt counts stay at the cap');
});

test('jitter takes up to its share off the delay, never more, never adds', () => {
  assert.equal(backoffDelay(3, BACKOFF_DEFAULTS, () => 0), 2000);
  assert.equal(backoffDelay(3, BACKOFF_DEFAULTS, () => 0.999999), 1000);
  const seen = new Set<number>();
  for (let i = 0; i < 200; i++) {
    const d = backoffDelay(2, BACKOFF_DEFAULTS);
    assert.ok(d >= 500 && d <= 1000, `delay ${d} out of [500, 1000]`);
    seen.add(d);
  }
  assert.ok(seen.size > 20, 'delays of a herd spread out');
  assert.equal(backoffDelay(5, { ...BACKOFF_DEFAULTS, jitter: 1 }, () => 0.5), 4000);
});

test('bad backoff options are refused with the field named', () => {
  assert.throws(() => backoffOptions({ initial: -1 }), /backoff\.initial/);
  assert.throws(() => backoffOptions({ factor: 0.5 }), /backoff\.factor/);
  assert.throws(() => backoffOptions({ jitter: 2 }), /backoff\.jitter/);
  assert.throws(() => backoffOptions({ initial: 500, max: 100 }), /backoff\.max/);
  assert.deepEqual(backoffOptions({ max: 30_000 }), { ...BACKOFF_DEFAULTS, max: 30_000 });
});

test('the reconnect rule is the registry: each recorded code as recorded, the rest by range; the SDK exports that very function', () => {
  assert.equal(sdk.shouldReconnect, shouldReconnect, 'the SDK does not mirror the rule, it re-exports it');
  for (const [name, record] of Object.entries(CLOSE_CODES)) assert.equal(shouldReconnect(record.code), record.reconnect, name);
  // What a user sees: network drops, drains, slow consumers and resync come back; client mistakes and expired tokens do not.
  assert.deepEqual([1000, 1001, 1006, 1011, 4508, 4510].map(shouldReconnect), [true, true, true, true, true, true]);
  assert.deepEqual([1002, 1003, 1007, 1008, 1009, 4001].map(shouldReconnect), [false, false, false, false, false, false]);
  // Unrecorded codes follow their range.
  assert.deepEqual([4000, 4003, 4499].map(shouldReconnect), [false, false, false]);
  assert.deepEqual([4500, 4999, 1012, 1013, 3000].map(shouldReconnect), [true, true, true, true, true]);
});

test('a refused upgrade is retried only when its status says "not now"', () => {
  for (const [name, record] of Object.entries(UPGRADE_STATUSES)) assert.equal(shouldRetryUpgrade(record.status), record.retry, name);
  assert.deepEqual([400, 401, 403, 404, 405, 431].map(shouldRetryUpgrade), [false, false, false, false, false, false]);
  assert.deepEqual([408, 429, 503, 502].map(shouldRetryUpgrade), [true, true, true, true]);
});

test('the cursor delivers each offset once and never goes back', () => {
  const cursor = new ChannelCursor();
  assert.equal(cursor.subscribed({ offset: 10, epoch: 'e1' }, undefined), 'fresh');
  assert.deepEqual(cursor.position, { offset: 10, epoch: 'e1' });
  const delivered = [11, 12, 12, 11, 13, 10, 14].filter((o) => cursor.accept(o));
  assert.deepEqual(delivered, [11, 12, 13, 14]);
  assert.deepEqual(cursor.position, { offset: 14, epoch: 'e1' });
});

test('offsets that are log positions (increasing, not consecutive): a jump is no gap, a replay is still dropped', () => {
  const cursor = new ChannelCursor();
  cursor.subscribed({ offset: 1040, epoch: 'js' }, undefined);
  // JetStream sequences shared with other channels: 1041 and 1043 went elsewhere.
  assert.deepEqual([1042, 1044, 1044, 1042, 1101, 1100].filter((o) => cursor.accept(o)), [1042, 1044, 1101]);
  const since = cursor.position;
  assert.deepEqual(since, { offset: 1101, epoch: 'js' });
  // Recovered after a reconnect: the server's position is a later log position; nothing is missing.
  assert.equal(cursor.subscribed({ offset: 1500, epoch: 'js', recovered: true }, since), 'recovered');
  assert.deepEqual([1101, 1600].filter((o) => cursor.accept(o)), [1600]);
});

test('a resubscription that recovered drops what overlaps and continues', () => {
  const cursor = new ChannelCursor();
  cursor.subscribed({ offset: 0, epoch: 'e1' }, undefined);
  [1, 2, 3].forEach((o) => cursor.accept(o));
  const since = cursor.position;
  assert.deepEqual(since, { offset: 3, epoch: 'e1' });
  // Replayed before the confirmation: 3 again (overlap), then 4 and 5 that were missed.
  assert.deepEqual([3, 4, 5].filter((o) => cursor.accept(o)), [4, 5]);
  assert.equal(cursor.subscribed({ offset: 5, epoch: 'e1', recovered: true }, since), 'recovered');
  assert.deepEqual([5, 6].filter((o) => cursor.accept(o)), [6]);
});

test('a resubscription that did not recover resets the cursor to the new stream', () => {
  const cursor = new ChannelCursor({ offset: 40, epoch: 'e1' });
  const since = cursor.position;
  assert.equal(cursor.subscribed({ offset: 2, epoch: 'e2', recovered: false }, since), 'unrecovered');
  assert.deepEqual(cursor.position, { offset: 2, epoch: 'e2' });
  assert.deepEqual([3, 4].filter((o) => cursor.accept(o)), [3, 4], 'low offsets of a new epoch are not mistaken for duplicates');
  // A changed epoch is never "recovered", and neither is a server that does not say so.
  const c2 = new ChannelCursor({ offset: 5, epoch: 'a' });
  assert.equal(c2.subscribed({ offset: 9, epoch: 'b', recovered: true }, { offset: 5, epoch: 'a' }), 'unrecovered');
  const c3 = new ChannelCursor({ offset: 5, epoch: 'a' });
  assert.equal(c3.subscribed({ offset: 9, epoch: 'a' }, { offset: 5, epoch: 'a' }), 'unrecovered');
});

test('a message from another epoch is recognised as a restarted stream, not as a duplicate', () => {
  const cursor = new ChannelCursor();
  cursor.subscribed({ offset: 0, epoch: 'e1' }, undefined);
  [1, 2, 3].forEach((o) => cursor.accept(o));
  assert.equal(cursor.isOtherEpoch('e1'), false);
  assert.equal(cursor.isOtherEpoch(undefined), false, 'a frame without an epoch says nothing');
  assert.equal(cursor.isOtherEpoch('e2'), true);
  cursor.restart('e2', 1);
  assert.deepEqual([1, 2, 2].filter((o) => cursor.accept(o)), [1, 2]);
  assert.deepEqual(cursor.position, { offset: 2, epoch: 'e2' });
});

test('endpoint URLs: http becomes ws, a bare host gets /ws/v1, other schemes are refused', () => {
  assert.equal(endpointUrl('ws://localhost:8080'), 'ws://localhost:8080/ws/v1');
  assert.equal(endpointUrl('http://h:1/'), 'ws://h:1/ws/v1');
  assert.equal(endpointUrl('https://h/ws/v1'), 'wss://h/ws/v1');
  assert.equal(endpointUrl('ws://h/custom?x=1'), 'ws://h/custom?x=1');
  assert.throws(() => endpointUrl('ftp://h'), /ws:\/\//);
  assert.throws(() => endpointUrl('not a url'), /^TypeError: url: expected a full WebSocket URL/);
  assert.throws(() => endpointUrl('/ws/v1'), /url: .*a path alone works only in a browser page/, 'outside a browser the option is named, not "Invalid URL"');
});

test("the upgrade check's URL and answer: /check after the endpoint's path, the query kept; only a check-shaped refusal counts", () => {
  assert.equal(checkUrl('ws://h:3000/ws/v1?token=a.b.c'), 'http://h:3000/ws/v1/check?token=a.b.c');
  assert.equal(checkUrl('wss://h/ws/echo/'), 'https://h/ws/echo/check');
  assert.deepEqual(refusalOf(401, '{"error":"unauthorized","message":"missing token","by":"token"}'), { status: 401, code: 'unauthorized', message: 'missing token', by: 'token' });
  assert.deepEqual(refusalOf(503, '{"error":"unavailable","message":"busy"}'), { status: 503, code: 'unavailable', message: 'busy' });
  assert.equal(refusalOf(404, '{"error":"not_found","message":"not found"}'), undefined, 'a node or proxy without the check');
  assert.equal(refusalOf(401, 'Unauthorized'), undefined);
  assert.equal(refusalOf(401, '{"message":"no code"}'), undefined);
  assert.equal(refusalOf(204, ''), undefined);
});
