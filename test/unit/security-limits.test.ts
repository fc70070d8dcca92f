import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { test } from 'node:test';
import type { Client } from '../../src/transport/client.js';
import { clientIp, IpCounter, RateLimiter, RateVerdict } from '../../src/transport/limits.js';

/** The bucket's state lives on the Client; only those fields matter here. */
function bucket(): Client {
  return { rateTokens: 0, rateRefilledAt: 0, rateDropped: 0, rateWindowStart: 0 } as Client;
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
  assert.equal(d.rateDropped, 1, 'drops counted in a new window');
});

test('a fractional rate still admits one message', () => {
  const limiter = new RateLimiter(0.5);
  const c = bucket();
  assert.equal(limiter.take(c, 1000), RateVerdict.OK);
  assert.equal(limiter.take(c, 1000), RateVerdict.LIMITED);
  assert.equal(limiter.take(c, 3000), RateVerdict.OK);
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
