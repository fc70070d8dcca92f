import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Authorizer, PatternList } from '../../src/channels/patterns.js';
import { patternsProblem } from '../../src/protocol/patterns.js';
import { identityOf } from '../../src/transport/auth.js';
import { ANONYMOUS } from '../../src/transport/client.js';
import { decode } from '../../src/protocol/decode.js';

test('decode accepts every client frame of the protocol', () => {
  const cases = [
    { type: 'subscribe', channel: 'chat:1', id: 1 },
    { type: 'subscribe', channel: 'a', since: { offset: 0, epoch: 'e' } },
    { type: 'unsubscribe', channel: 'a/b.c-d_e@f=g+h' },
    { type: 'publish', channel: 'a', data: null, id: 3 },
    { type: 'publish', channel: 'a', data: { deep: [1, 'x'] } },
    { type: 'publish', channel: 'a', data: 1, id: 4, idempotency_key: 'order-1:~!' },
    { type: 'publish', channel: 'a', data: 1, idempotency_key: 'k'.repeat(128) },
    { type: 'history', channel: 'a', limit: 0, id: 9 },
    { type: 'history', channel: 'a', limit: 5, before: 40 },
    { type: 'history', channel: 'a' },
    { type: 'presence', channel: 'a' },
  ];
  for (const frame of cases) {
    const result = decode(Buffer.from(JSON.stringify(frame)));
    assert.ok(result.ok, JSON.stringify(frame));
    assert.deepEqual(result.frame, frame);
  }
});

test('decode drops unknown fields and rejects junk with bad_request, echoing a valid id', () => {
  const r = decode('{"type":"subscribe","channel":"a","extra":1}');
  assert.ok(r.ok);
  assert.deepEqual(r.frame, { type: 'subscribe', channel: 'a' });
  for (const [text, id] of [
    ['', undefined],
    ['null', undefined],
    ['"str"', undefined],
    ['{"channel":"a","id":4}', 4],
    ['{"type":"publish","channel":"a","id":1.5}', undefined],
    ['{"type":"subscribe","channel":"a","since":{"offset":1},"id":5}', 5],
    ['{"type":"subscribe","channel":"a","since":{"offset":1.2,"epoch":"e"},"id":6}', 6],
    ['{"type":"history","channel":"a","limit":-1,"id":7}', 7],
    ['{"type":"history","channel":"a","before":"3","id":9}', 9],
    ['{"type":"presence","channel":"{a}","id":8}', 8],
    ['{"type":"publish","channel":"a","data":1,"idempotency_key":"","id":10}', 10],
    ['{"type":"publish","channel":"a","data":1,"idempotency_key":"a b","id":11}', 11],
    ['{"type":"publish","channel":"a","data":1,"idempotency_key":7,"id":12}', 12],
    [`{"type":"publish","channel":"a","data":1,"idempotency_key":"${'k'.repeat(129)}","id":13}`, 13],
    ['{"type":"publish","channel":"a","data":1,"idempotency_key":"caf\u00e9","id":14}', 14],
    ['{"type":"publish","channel":"a","data":1,"idempotency_key":"tab\\tkey","id":15}', 15],
  ] as const) {
    const result = decode(text);
    assert.equal(result.ok, false, text);
    if (!result.ok) {
      assert.equal(result.code, 'bad_request');
      assert.equal(result.id, id, text);
    }
  }
});

test('channel patterns: * matches any run of characters, other characters are literal', () => {
  const list = new PatternList(['chat:*', 'exact', 'a.*.z']);
  for (const ok of ['chat:', 'chat:lobby', 'chat:a:b', 'exact', 'a.b.z', 'a..z']) assert.ok(list.matches(ok), ok);
  for (const no of ['chat', 'xchat:1', 'exact2', 'abz', 'a.b.y']) assert.ok(!list.matches(no), no);
  assert.ok(new PatternList(['*']).matches('anything'));
  assert.ok(!new PatternList([]).matches('anything'));
});

test('the token\'s channels claim grants on top of the anonymous namespaces', () => {
  const auth = new Authorizer(['public:*'], []);
  const alice = { user: 'alice', channels: ['chat:*', 'user:alice'], expiresAt: undefined };
  assert.ok(auth.allowed(alice, 'subscribe', 'chat:1'));
  assert.ok(auth.allowed(alice, 'publish', 'user:alice'));
  assert.ok(!auth.allowed(alice, 'publish', 'user:bob'));
  assert.ok(auth.allowed(alice, 'subscribe', 'public:x'));
  assert.ok(!auth.allowed(alice, 'publish', 'public:x'));
  const noClaim = { user: 'bob', channels: undefined, expiresAt: undefined };
  assert.ok(!auth.allowed(noClaim, 'subscribe', 'chat:1'));
  assert.ok(!auth.allowed(ANONYMOUS, 'subscribe', 'chat:1'));
  assert.ok(auth.allowed(ANONYMOUS, 'subscribe', 'public:1'));
});

test('channel patterns match as the glob they spell, star-heavy ones included (no backtracking regex)', () => {
  // The reference: a glob means "the literal pieces in order, anything between": checked here
  // against every split of the name, on short names, for patterns built from a, b and *.
  const reference = (pattern: string, name: string): boolean => {
    const match = (p: number, n: number): boolean => {
      if (p === pattern.length) return n === name.length;
      if (pattern[p] === '*') {
        for (let k = n; k <= name.length; k++) if (match(p + 1, k)) return true;
        return false;
      }
      return n < name.length && pattern[p] === name[n] && match(p + 1, n + 1);
    };
    return match(0, 0);
  };
  const words = (alphabet: string, max: number): string[] => {
    let out = [''];
    let level = [''];
    for (let i = 0; i < max; i++) {
      level = level.flatMap((w) => [...alphabet].map((c) => w + c));
      out = out.concat(level);
    }
    return out;
  };
  const patterns = words('ab*', 4).filter((p) => p.includes('*'));
  const names = words('ab', 5);
  for (const pattern of patterns) {
    const list = new PatternList([pattern]);
    for (const name of names) assert.equal(list.matches(name), reference(pattern, name), `${pattern} against ${JSON.stringify(name)}`);
  }
  // The shape that stalled the event loop for over a second per frame as a regular expression.
  const nasty = new PatternList(['*a*a*a*a*a*a*a*a*b']);
  assert.equal(nasty.matches('a'.repeat(200)), false);
  assert.equal(nasty.matches('a'.repeat(199) + 'b'), true);
});

test('patterns are bounded: at most 100, each 1 to 400 characters of channel-name characters and *', () => {
  assert.equal(patternsProblem(['chat:*', 'a']), undefined);
  assert.match(patternsProblem(Array.from({ length: 101 }, (_, i) => `c${i}`))!, /at most 100 patterns/);
  assert.match(patternsProblem(['*'.repeat(401)])!, /1 to 400 characters/);
  assert.match(patternsProblem([''])!, /1 to 400 characters/);
  assert.match(patternsProblem(['chat room'])!, /letters, digits/);
});

test('a token whose channels claim breaks the bounds is refused with 401', () => {
  const many = identityOf({ sub: 'u', channels: Array.from({ length: 101 }, (_, i) => `c${i}`) });
  assert.deepEqual([many.ok, !many.ok && many.status], [false, 401]);
  const odd = identityOf({ sub: 'u', channels: ['chat room'] });
  assert.deepEqual([odd.ok, !odd.ok && odd.status], [false, 401]);
  assert.equal(identityOf({ sub: 'u', channels: ['chat:*'] }).ok, true);
});
