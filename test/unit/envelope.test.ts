import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeEnvelope, encodeEnvelope, EnvelopeKind, isFromOrigin } from '../../src/protocol/envelope.js';

test('an envelope carries kind, origin and body unchanged', () => {
  const body = Buffer.from('Received: héllo \u{1F600}');
  const wire = encodeEnvelope(EnvelopeKind.ECHO, 'node-7', body);
  const env = decodeEnvelope(wire)!;
  assert.equal(env.kind, EnvelopeKind.ECHO);
  assert.equal(env.origin, 'node-7');
  assert.deepEqual(env.body, body);
});

test('own messages are recognised without decoding; others are not', () => {
  const wire = encodeEnvelope(EnvelopeKind.ECHO, 'node-1', Buffer.from('x'));
  assert.equal(isFromOrigin(wire, Buffer.from('node-1')), true);
  assert.equal(isFromOrigin(wire, Buffer.from('node-10')), false);
  assert.equal(isFromOrigin(wire, Buffer.from('node-')), false);
});

test('junk from the broker decodes to undefined, never throws', () => {
  for (const junk of [Buffer.alloc(0), Buffer.from([9, 1, 0]), Buffer.from([1, 1, 200, 65]), Buffer.from('hello')]) {
    assert.equal(decodeEnvelope(junk), undefined);
  }
});

test('an envelope carries its publish time with sub-millisecond precision', () => {
  const at = 1_790_000_000_123.456;
  const env = decodeEnvelope(encodeEnvelope(EnvelopeKind.CHANNEL, 'n2', Buffer.from('{}'), at))!;
  assert.equal(env.publishedAt, at);
  assert.deepEqual(env.body, Buffer.from('{}'));
  const now = decodeEnvelope(encodeEnvelope(EnvelopeKind.ECHO, 'n2', Buffer.alloc(0)))!;
  assert.ok(Math.abs(now.publishedAt! - Date.now()) < 1000, 'defaults to now');
});

test('a version-1 envelope (no publish time) is dropped: every node of a cluster speaks version 2', () => {
  const v1 = Buffer.concat([Buffer.from([1, EnvelopeKind.ECHO, 6]), Buffer.from('node-9'), Buffer.from('Received: old')]);
  assert.equal(decodeEnvelope(v1), undefined);
});

test('a version-2 envelope cut inside its publish time is refused', () => {
  const wire = encodeEnvelope(EnvelopeKind.ECHO, 'n1', Buffer.alloc(0));
  assert.equal(decodeEnvelope(wire.subarray(0, wire.length - 1)), undefined);
});
