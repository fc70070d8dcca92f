/**
 * The pieces of the identity lifecycle that need no socket (docs/auth.md): the decoder's
 * `refresh` and token-carrying `subscribe` frames, the encoders of the new frames, the hooks'
 * `expires_at` answers, when --refresh-hook is asked, and when the SDK refreshes.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { refreshDelay } from '../../client/refresh.js';
import { connectAnswer, refreshAnswer } from '../../src/hooks/hooks.js';
import { decode, MAX_FRAME_TOKEN_LENGTH } from '../../src/protocol/decode.js';
import { encodeConnected, encodeRefreshed, encodeSubscribed, encodeUnsubscribed } from '../../src/protocol/encode.js';
import { refreshAt } from '../../src/transport/lifetime.js';
import { createConfig } from '../../src/config/load.js';
import { expectRejected } from '../helpers/config.js';

test('decode accepts refresh (with and without a channel) and subscribe with a token', () => {
  const cases = [
    { type: 'refresh', token: 'a.b.c', id: 4 },
    { type: 'refresh', token: 'a.b.c' },
    { type: 'refresh', channel: 'vip', token: 'a.b.c', id: 5 },
    { type: 'subscribe', channel: 'vip', token: 'a.b.c', id: 6 },
    { type: 'subscribe', channel: 'vip', since: { offset: 3, epoch: 'e' }, token: 'a.b.c' },
  ];
  for (const frame of cases) {
    const result = decode(JSON.stringify(frame));
    assert.ok(result.ok, JSON.stringify(frame));
    assert.deepEqual(result.frame, frame);
  }
});

test('decode refuses a refresh or subscribe whose token is missing, empty, not a string or too long, echoing the id', () => {
  const long = 'x'.repeat(MAX_FRAME_TOKEN_LENGTH + 1);
  for (const [frame, channel] of [
    [{ type: 'refresh', id: 1 }, undefined],
    [{ type: 'refresh', token: '', id: 1 }, undefined],
    [{ type: 'refresh', token: 42, id: 1 }, undefined],
    [{ type: 'refresh', token: long, id: 1 }, undefined],
    [{ type: 'refresh', channel: 'vip', id: 1 }, 'vip'],
    [{ type: 'subscribe', channel: 'vip', token: null, id: 1 }, 'vip'],
    [{ type: 'subscribe', channel: 'vip', token: ['a'], id: 1 }, 'vip'],
  ] as const) {
    const result = decode(JSON.stringify(frame));
    assert.equal(result.ok, false, JSON.stringify(frame).slice(0, 80));
    if (result.ok) continue;
    assert.equal(result.code, 'bad_request');
    assert.equal(result.id, 1);
    assert.equal(result.channel, channel);
    assert.match(result.message, /"token"/);
  }
  // A refresh with a channel that is not a channel name is refused for the channel.
  const bad = decode('{"type":"refresh","channel":"a b","token":"t","id":2}');
  assert.equal(bad.ok, false);
  if (!bad.ok) assert.match(bad.message, /"channel"/);
});

test('the new frames are written with their keys only, optional ones left out', () => {
  assert.equal(encodeConnected({ type: 'connected', client: 'c', node: 'n' }), '{"type":"connected","client":"c","node":"n"}');
  assert.equal(encodeConnected({ type: 'connected', client: 'c', node: 'n', expires: 1700000000 }), '{"type":"connected","client":"c","node":"n","expires":1700000000}');
  assert.equal(encodeRefreshed({ type: 'refreshed', id: 3, expires: 5 }), '{"type":"refreshed","id":3,"expires":5}');
  assert.equal(encodeRefreshed({ type: 'refreshed', channel: 'vip', expires: 5 }), '{"type":"refreshed","channel":"vip","expires":5}');
  assert.equal(encodeUnsubscribed({ type: 'unsubscribed', channel: 'a', reason: 'expired' }), '{"type":"unsubscribed","channel":"a","reason":"expired"}');
  assert.equal(encodeUnsubscribed({ type: 'unsubscribed', channel: 'a', id: 2 }), '{"type":"unsubscribed","channel":"a","id":2}');
  assert.equal(encodeSubscribed({ type: 'subscribed', channel: 'a', offset: 0, epoch: 'e', expires: 9 }), '{"type":"subscribed","channel":"a","offset":0,"epoch":"e","expires":9}');
});

test('the connect hook may give expires_at; the refresh hook must, and may give new patterns and meta', () => {
  const admit = connectAnswer('{"user":"u","expires_at":1700000000}');
  assert.ok(typeof admit !== 'string');
  assert.equal(admit.expiresAt, 1_700_000_000_000);
  const plain = connectAnswer('{"user":"u"}');
  assert.ok(typeof plain !== 'string');
  assert.equal(plain.expiresAt, undefined);
  assert.match(String(connectAnswer('{"user":"u","expires_at":"soon"}')), /expires_at/);
  assert.match(String(connectAnswer('{"user":"u","expires_at":-1}')), /expires_at/);

  const extend = refreshAnswer('{"expires_at":1700000060,"channels":["a:*"],"meta":{"name":"A"}}');
  assert.deepEqual(extend, { kind: 'extend', expiresAt: 1_700_000_060_000, channels: ['a:*'], publish: undefined, meta: { name: 'A' } });
  assert.match(String(refreshAnswer('{"channels":["a"]}')), /expires_at/);
  assert.match(String(refreshAnswer('{"expires_at":1,"channels":"a"}')), /channels/);
  assert.match(String(refreshAnswer('{"expires_at":1,"meta":[1]}')), /meta/);
  assert.match(String(refreshAnswer('nope')), /not JSON/);
});

test('--refresh-hook is asked a fifth of the lifetime before the end, between 5 s and 60 s, never past half the lifetime', () => {
  assert.equal(refreshAt(0, 3_600_000), 3_600_000 - 60_000);
  assert.equal(refreshAt(0, 100_000), 100_000 - 20_000);
  assert.equal(refreshAt(0, 20_000), 20_000 - 5_000);
  assert.equal(refreshAt(0, 4_000), 4_000 - 2_000);
});

test('the SDK refreshes at 80 % of the time left, less up to 10 % of it at random', () => {
  const now = 1_000_000;
  const expires = (now + 10_000) / 1000;
  assert.equal(refreshDelay(expires, now, 0), 8_000);
  assert.equal(refreshDelay(expires, now, 1), 7_000);
  assert.equal(refreshDelay(expires, now, 0.5), 7_500);
  // Already past: at once.
  assert.equal(refreshDelay(expires, now + 20_000, 0), 0);
});

test('--refresh-hook needs --connect-hook (it renews what the connect hook admitted), and takes an http(s) URL', () => {
  expectRejected({ refreshHook: 'http://127.0.0.1:4000/refresh' }, '--refresh-hook', /needs --connect-hook/);
  expectRejected({ connectHook: 'http://127.0.0.1:4000/connect', refreshHook: 'ftp://x/refresh' }, '--refresh-hook');
  const config = createConfig({ connectHook: 'http://127.0.0.1:4000/connect', refreshHook: 'http://127.0.0.1:4000/refresh' });
  assert.equal(config.refreshHook, 'http://127.0.0.1:4000/refresh');
});
