// The server frames' encoders: what a client parses is the typed frame, optional keys are left
// out, and the bytes are the ones the channel endpoint and the HTTP API have always sent.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  encodeAck,
  encodeConnected,
  encodeError,
  encodeHistory,
  encodeHistoryBody,
  encodeJoinLeave,
  encodePresence,
  encodeRawEntries,
  encodeSubscribed,
  encodeUnsubscribed,
  type RawEntry,
} from '../../src/protocol/encode.js';
import type {
  AckFrame,
  ConnectedFrame,
  ErrorFrame,
  JoinLeaveFrame,
  PresenceClient,
  PresenceFrame,
  SubscribedFrame,
  UnsubscribedFrame,
} from '../../src/protocol/frames.js';

const ODD_CHANNEL = 'a/b=c+d@e';

test('every encoder parses back to the typed frame it was given, with all optional keys set', () => {
  const cases: Array<[unknown, string]> = [];
  const connected: ConnectedFrame = { type: 'connected', client: 'c-1', node: 'n1' };
  cases.push([connected, encodeConnected(connected)]);
  const subscribed: SubscribedFrame = { type: 'subscribed', channel: ODD_CHANNEL, id: 7, offset: 3, epoch: '00ff', recovered: true };
  cases.push([subscribed, encodeSubscribed(subscribed)]);
  const unsubscribed: UnsubscribedFrame = { type: 'unsubscribed', channel: 'news', id: 2 };
  cases.push([unsubscribed, encodeUnsubscribed(unsubscribed)]);
  const ack: AckFrame = { type: 'ack', id: 9, offset: 41 };
  cases.push([ack, encodeAck(ack)]);
  const presence: PresenceFrame = { type: 'presence', channel: 'chat:1', id: 4, clients: [{ client: 'c-1', user: 'ann' }, { client: 'c-2', user: null }] };
  cases.push([presence, encodePresence(presence)]);
  for (const type of ['join', 'leave'] as const) {
    const event: JoinLeaveFrame = { type, channel: 'chat:1', client: 'c-2', user: 'bo' };
    cases.push([event, encodeJoinLeave(event)]);
  }
  const error: ErrorFrame = { type: 'error', id: 3, code: 'forbidden', message: 'not allowed to publish to x "y"', channel: 'x' };
  cases.push([error, encodeError(error)]);
  for (const [frame, json] of cases) assert.deepEqual(JSON.parse(json), frame, json);
});

test('history frames parse back to head + messages, with each stored JSON text as its value', () => {
  const stored: RawEntry[] = [
    { offset: 5, data: '{"n":{"deep":[1,2,{"x":null}]}}' },
    { offset: 6, data: '"héllo ☃ 🎉"' },
    { offset: 7, data: 'null' },
  ];
  const messages = stored.map((m) => ({ offset: m.offset, data: JSON.parse(m.data) as unknown }));
  const head = { type: 'history', channel: ODD_CHANNEL, id: 12, epoch: 'beef', offset: 7 } as const;
  assert.deepEqual(JSON.parse(encodeHistory(head, stored)), { ...head, messages });
  const body = { channel: ODD_CHANNEL, epoch: 'beef', offset: 7 };
  assert.deepEqual(JSON.parse(encodeHistoryBody(body, stored)), { ...body, messages });
  assert.deepEqual(JSON.parse(encodeHistory({ type: 'history', channel: 'c', epoch: 'e', offset: 0 }, [])), {
    type: 'history',
    channel: 'c',
    epoch: 'e',
    offset: 0,
    messages: [],
  });
  assert.equal(encodeRawEntries([]), '[]');
});

test('subscribed carries a last-value channel\'s latest entry spliced in last, its stored JSON text as its data', () => {
  for (const data of ['{"bid":1.0841,"n":{"deep":[1,{"x":null}]}}', '"héllo ☃ 🎉"', 'null', '0']) {
    const head = { type: 'subscribed', channel: ODD_CHANNEL, id: 2, offset: 42, epoch: 'beef', recovered: false, delta: true } as const;
    const json = encodeSubscribed(head, { offset: 41, data });
    assert.deepEqual(JSON.parse(json), { ...head, latest: { offset: 41, data: JSON.parse(data) as unknown } }, json);
    assert.ok(json.endsWith(`"latest":{"offset":41,"data":${data}}}`), 'latest is the last key');
  }
  assert.equal('latest' in (JSON.parse(encodeSubscribed({ type: 'subscribed', channel: 'c', offset: 0, epoch: 'e' })) as object), false, 'no entry, no latest');
});

test('optional keys are left out when undefined, not sent as null', () => {
  const parsed = [
    encodeSubscribed({ type: 'subscribed', channel: 'c', offset: 0, epoch: 'e' }),
    encodeUnsubscribed({ type: 'unsubscribed', channel: 'c' }),
    encodeAck({ type: 'ack', offset: 1 }),
    encodePresence({ type: 'presence', channel: 'c', clients: [] }),
    encodeError({ type: 'error', code: 'bad_request', message: 'm' }),
    encodeHistory({ type: 'history', channel: 'c', epoch: 'e', offset: 0 }, []),
  ].map((json) => JSON.parse(json) as Record<string, unknown>);
  for (const frame of parsed) assert.equal('id' in frame, false, `${String(frame.type)} has no id`);
  assert.equal('recovered' in parsed[0]!, false);
  assert.equal('channel' in parsed[4]!, false);
  // `recovered: false` and `user: null` are values, not absences.
  assert.equal(JSON.parse(encodeSubscribed({ type: 'subscribed', channel: 'c', offset: 0, epoch: 'e', recovered: false })).recovered, false);
  assert.equal(JSON.parse(encodeJoinLeave({ type: 'leave', channel: 'c', client: 'x', user: null })).user, null);
});

test('the bytes are the ones the endpoint and the HTTP API send today', () => {
  assert.equal(encodeConnected({ type: 'connected', client: 'c-1', node: 'n1' }), '{"type":"connected","client":"c-1","node":"n1"}');
  assert.equal(
    encodeSubscribed({ type: 'subscribed', channel: ODD_CHANNEL, id: 7, offset: 3, epoch: '00ff', recovered: false }),
    '{"type":"subscribed","channel":"a/b=c+d@e","id":7,"offset":3,"epoch":"00ff","recovered":false}',
  );
  assert.equal(encodeSubscribed({ type: 'subscribed', channel: 'news', offset: 0, epoch: 'ab' }), '{"type":"subscribed","channel":"news","offset":0,"epoch":"ab"}');
  assert.equal(encodeUnsubscribed({ type: 'unsubscribed', channel: 'news', id: 2 }), '{"type":"unsubscribed","channel":"news","id":2}');
  assert.equal(encodeAck({ type: 'ack', offset: 5 }), '{"type":"ack","offset":5}');
  assert.equal(encodeAck({ type: 'ack', id: 0, offset: 5 }), '{"type":"ack","id":0,"offset":5}');
  assert.equal(
    encodePresence({ type: 'presence', channel: 'chat:1', clients: [{ client: 'c-1', user: 'ann' }, { client: 'c-2', user: null }] }),
    '{"type":"presence","channel":"chat:1","clients":[{"client":"c-1","user":"ann"},{"client":"c-2","user":null}]}',
  );
  assert.equal(encodeJoinLeave({ type: 'join', channel: 'chat:1', client: 'c-2', user: null }), '{"type":"join","channel":"chat:1","client":"c-2","user":null}');
  assert.equal(
    encodeError({ type: 'error', id: 3, code: 'unavailable', message: 'not published: "redis" down', channel: ODD_CHANNEL }),
    '{"type":"error","id":3,"code":"unavailable","message":"not published: \\"redis\\" down","channel":"a/b=c+d@e"}',
  );
  assert.equal(encodeError({ type: 'error', code: 'bad_request', message: 'frame is not JSON' }), '{"type":"error","code":"bad_request","message":"frame is not JSON"}');
  const stored: RawEntry[] = [
    { offset: 1, data: '{"a":[1,{"b":"ü"}]}' },
    { offset: 2, data: '"☃"' },
  ];
  assert.equal(
    encodeHistory({ type: 'history', channel: ODD_CHANNEL, id: 4, epoch: '0a1b', offset: 2 }, stored),
    '{"type":"history","channel":"a/b=c+d@e","id":4,"epoch":"0a1b","offset":2,"messages":[{"offset":1,"data":{"a":[1,{"b":"ü"}]}},{"offset":2,"data":"☃"}]}',
  );
  assert.equal(
    encodeHistory({ type: 'history', channel: 'log', epoch: '0a1b', offset: 0 }, []),
    '{"type":"history","channel":"log","epoch":"0a1b","offset":0,"messages":[]}',
  );
  assert.equal(
    encodeHistoryBody({ channel: 'log', epoch: '0a1b', offset: 2 }, stored),
    '{"channel":"log","epoch":"0a1b","offset":2,"messages":[{"offset":1,"data":{"a":[1,{"b":"ü"}]}},{"offset":2,"data":"☃"}]}',
  );
});

test('key order is the frame\'s, whatever the order of the object given, and extra fields do not leak', () => {
  const shuffled = { epoch: 'e', offset: 1, id: 5, channel: 'c', type: 'subscribed' } as const;
  assert.equal(encodeSubscribed(shuffled), '{"type":"subscribed","channel":"c","id":5,"offset":1,"epoch":"e"}');
  // What a store returns may carry more than the protocol's fields (a Redis entry knows its node).
  const entry = { client: 'c-1', user: 'ann', node: 'n3' };
  const clients: PresenceClient[] = [entry];
  assert.equal(encodePresence({ type: 'presence', channel: 'p', clients }), '{"type":"presence","channel":"p","clients":[{"client":"c-1","user":"ann"}]}');
  const event = { type: 'leave', channel: 'p', client: 'c-1', user: null, node: 'n3' } as const;
  assert.equal(encodeJoinLeave(event), '{"type":"leave","channel":"p","client":"c-1","user":null}');
});

test('the compiled encoders import only protocol/ siblings and use no Node-only global (the browser SDK may import them)', () => {
  const js = readFileSync(fileURLToPath(new URL('../../src/protocol/encode.js', import.meta.url)), 'utf8');
  const specifiers = [...js.matchAll(/^\s*(?:import\b[^\n]*?|export\b[^\n]*\bfrom\s*)['"]([^'"]+)['"]/gm)].map((m) => m[1]!);
  for (const from of specifiers) assert.match(from, /^\.\/[\w-]+\.js$/, `encode.ts imports ${from}`);
  assert.doesNotMatch(js, /\b(Buffer|process|require)\b/);
});

test('a history page and a presence list that were cut say "more":true last; uncut ones say nothing', () => {
  const head = { type: 'history', channel: 'c', id: 1, epoch: 'e', offset: 9 } as const;
  const entries = [{ offset: 8, data: '"x"' }];
  assert.equal(encodeHistory({ ...head, more: true }, entries), '{"type":"history","channel":"c","id":1,"epoch":"e","offset":9,"messages":[{"offset":8,"data":"x"}],"more":true}');
  assert.equal(encodeHistory(head, entries), '{"type":"history","channel":"c","id":1,"epoch":"e","offset":9,"messages":[{"offset":8,"data":"x"}]}');
  assert.equal(encodeHistoryBody({ channel: 'c', epoch: 'e', offset: 9, more: true }, []), '{"channel":"c","epoch":"e","offset":9,"messages":[],"more":true}');
  assert.equal(encodePresence({ type: 'presence', channel: 'c', clients: [{ client: 'a', user: null }], more: true }), '{"type":"presence","channel":"c","clients":[{"client":"a","user":null}],"more":true}');
});
