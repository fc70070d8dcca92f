import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Authorizer, PatternList } from '../../src/channels/patterns.js';
import { ANONYMOUS } from '../../src/transport/client.js';
import { decode } from '../../src/protocol/decode.js';

test('decode accepts every client frame of the protocol', () => {
  const cases = [
    { type: 'subscribe', channel: 'chat:1', id: 1 },
    { type: 'subscribe', channel: 'a', since: { offset: 0, epoch: 'e' } },
    { type: 'unsubscribe', channel: 'a/b.c-d_e@f=g+h' },
    { type: 'publish', channel: 'a', data: null, id: 3 },
    { type: 'publish', channel: 'a', data: { deep: [1, 'x'] } },
    { type: 'history', channel: 'a', limit: 0, id: 9 },
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
    ['{"type":"presence","channel":"{a}","id":8}', 8],
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
