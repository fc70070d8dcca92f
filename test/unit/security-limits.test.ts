import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { test } from 'node:test';
import type { Client } from '../../src/transport/client.js';
import { ByteRateLimiter, clientIp, IpCounter, RateLimiter, RateVerdict } from '../../src/transport/limits.js';

/** A connection as the limiters see it: only its identity as a key (their buckets are their own). */
function bucket(): Client {
  return {} as Client;
}

test('token bucket: a burst of one second\'s allowance, then the rate', () => {
  const limiter = new RateLimiter(5);
  const c = bucket();
  const t0 = 1_000_000;
  for (let i = 0; i < 5; i++) assert.equal(limiter.take(c, t0), RateVerdict.OK, `burst message ${i}`);
  assert.equal(limiter.take(c, t0), RateVerdict.LIMITED);
  assert.equal(limiter.take(c, t0 + 200), RateVerdict.OK, 'one token back after 1/5 s');
  assert.equal(limiter.take(c, t0 + 200), RateVerdict.LIMITED);
  // Tokens never exceed the burst however long the client was idle.
  for (let i = 0; i < 5; i++) assert.equal(limiter.take(c, t0 + 60_000), RateVerdict.OK);
  assert.equal(limiter.take(c, t0 + 60_000), RateVerdict.LIMITED);
});

test('persistent abuse: more drops in 10 s than the limit admits in 10 s', () => {
  const limiter = new RateLimiter(2);
  assert.equal(limiter.abuseThreshold, 20);
  const c = bucket();
  const t0 = 5_000_000;
  limiter.take(c, t0);
  limiter.take(c, t0);
  const verdicts = Array.from({ length: 21 }, () => limiter.take(c, t0));
  assert.equal(verdicts.slice(0, 20).every((v) => v === RateVerdict.LIMITED), true);
  assert.equal(verdicts[20], RateVerdict.ABUSE);
  // A new window starts over.
  const d = bucket();
  limiter.take(d, t0);
  limiter.take(d, t0);
  for (let i = 0; i < 15; i++) limiter.take(d, t0);
  assert.equal(limiter.take(d, t0 + 10_001), RateVerdict.OK, 'the bucket refilled meanwhile');
  assert.equal(limiter.take(d, t0 + 10_001), RateVerdict.OK);
  assert.equal(limiter.take(d, t0 + 10_001), RateVerdict.LIMITED);
  assert.equal(limiter.dropped(d), 1, 'drops counted in a new window');
});

test('a fractional rate still admits one message', () => {
  const limiter = new RateLimiter(0.5);
  const c = bucket();
  assert.equal(limiter.take(c, 1000), RateVerdict.OK);
  assert.equal(limiter.take(c, 1000), RateVerdict.LIMITED);
  assert.equal(limiter.take(c, 3000), RateVerdict.OK);
});

test('--rate-limit-bytes: a bucket of bytes, a burst, the rate, and abuse counted in bytes', () => {
  const limiter = new ByteRateLimiter(1000, 4000);
  assert.equal(limiter.abuseThreshold, 10_000, '10 s at the rate (more than the burst)');
  const c = bucket();
  const t0 = 2_000_000;
  assert.equal(limiter.take(c, 3000, t0), RateVerdict.OK, 'within the burst');
  assert.equal(limiter.take(c, 1000, t0), RateVerdict.OK);
  assert.equal(limiter.take(c, 1, t0), RateVerdict.LIMITED, 'the burst is spent');
  // A frame the bucket cannot cover takes nothing: half a second later 500 bytes fit, 600 do not.
  assert.equal(limiter.take(c, 600, t0 + 500), RateVerdict.LIMITED);
  assert.equal(limiter.take(c, 500, t0 + 500), RateVerdict.OK);
  // Idle for a minute: the burst again, never more.
  assert.equal(limiter.take(c, 4001, t0 + 60_000), RateVerdict.LIMITED);
  assert.equal(limiter.take(c, 4000, t0 + 60_000), RateVerdict.OK);
  // Dropping more than 10 s worth of bytes within 10 s is abuse.
  const d = bucket();
  assert.equal(limiter.take(d, 4000, t0), RateVerdict.OK);
  const verdicts = Array.from({ length: 11 }, () => limiter.take(d, 1000, t0));
  assert.ok(verdicts.slice(0, 10).every((v) => v === RateVerdict.LIMITED));
  assert.equal(verdicts[10], RateVerdict.ABUSE);
  assert.equal(limiter.dropped(d), 11_000);
  // A small rate: abuse is still judged against at least the burst.
  assert.equal(new ByteRateLimiter(10, 64 * 1024).abuseThreshold, 64 * 1024);
});

test('a limiter keeps a bucket only for a connection that sent something, until it closes', () => {
  const messages = new RateLimiter(1);
  const bytes = new ByteRateLimiter(100, 100);
  const quiet = bucket();
  const talker = bucket();
  assert.equal(messages.dropped(quiet), 0);
  assert.equal(messages.size + bytes.size, 0, 'nothing for a connection that has not sent');
  assert.equal(messages.take(talker, 1000), RateVerdict.OK);
  assert.equal(messages.take(talker, 1000), RateVerdict.LIMITED);
  assert.equal(bytes.take(talker, 100, 1000), RateVerdict.OK);
  assert.deepEqual([messages.size, bytes.size, messages.dropped(talker)], [1, 1, 1]);
  messages.forget(talker);
  bytes.forget(talker);
  assert.deepEqual([messages.size, bytes.size, messages.dropped(talker)], [0, 0, 0]);
  // Forgotten means forgotten: a bucket made afresh is full.
  assert.equal(messages.take(talker, 1000), RateVerdict.OK);
});

test('per-IP counter', () => {
  const ips = new IpCounter();
  ips.add('1.2.3.4');
  ips.add('1.2.3.4');
  ips.add('5.6.7.8');
  assert.equal(ips.count('1.2.3.4'), 2);
  ips.remove('1.2.3.4');
  ips.remove('1.2.3.4');
  assert.equal(ips.count('1.2.3.4'), 0);
  assert.equal(ips.size, 1, 'empty entries are dropped');
});

function req(remoteAddress: string, xff?: string | string[]): IncomingMessage {
  return { socket: { remoteAddress }, headers: xff === undefined ? {} : { 'x-forwarded-for': xff } } as unknown as IncomingMessage;
}

test('client IP: X-Forwarded-For only from a trusted proxy, and only its last entry', () => {
  const trusted = new Set(['127.0.0.1']);
  assert.equal(clientIp(req('::ffff:127.0.0.1', '9.9.9.9, 10.0.0.7'), trusted), '10.0.0.7', 'the entry the proxy appended');
  assert.equal(clientIp(req('127.0.0.1', ['1.1.1.1', '10.0.0.8']), trusted), '10.0.0.8');
  assert.equal(clientIp(req('127.0.0.1'), trusted), '127.0.0.1', 'no header: the peer');
  assert.equal(clientIp(req('203.0.113.5', '10.0.0.7'), trusted), '203.0.113.5', 'untrusted peer: header ignored');
  assert.equal(clientIp(req('127.0.0.1', '10.0.0.7'), new Set()), '127.0.0.1', 'no --trust-proxy: header ignored');
});
