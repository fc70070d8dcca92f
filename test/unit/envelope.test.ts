import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeEnvelope, encodeEnvelope, EnvelopeKind, isFromOrigin } from '../../src/node/envelope.js';

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
