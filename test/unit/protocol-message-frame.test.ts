// The `message` frame's one layout: the frame a client parses, the bus payload, the Redis
// script's expression and the scanner that reads offset and epoch back without parsing JSON.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeEnvelope, encodeEnvelope, EnvelopeKind } from '../../src/protocol/envelope.js';
import type { MessageFrame } from '../../src/protocol/frames.js';
import {
  buildMessagePayload,
  encodeMessage,
  encodeMessageFrame,
  luaMessagePayload,
  messageHead,
  MessageScanner,
} from '../../src/protocol/message-frame.js';

const CHANNEL = 'a/b=c+d@e';

test('a message frame is head, offset, epoch, data, and parses as exactly the MessageFrame', () => {
  const json = encodeMessage(CHANNEL, 42, '00c0ffee', '{"n":[1,{"x":"☃"}]}');
  assert.equal(json, '{"type":"message","channel":"a/b=c+d@e","offset":42,"epoch":"00c0ffee","data":{"n":[1,{"x":"☃"}]}}');
  const frame: MessageFrame = { type: 'message', channel: CHANNEL, offset: 42, epoch: '00c0ffee', data: { n: [1, { x: '☃' }] } };
  assert.deepEqual(JSON.parse(json), frame);
  assert.equal(encodeMessageFrame({ ...frame, epoch: '00c0ffee' }), json);
  assert.ok(json.startsWith(messageHead(CHANNEL)));
});

test('the bus payload is the envelope around the same frame bytes', () => {
  const head = encodeEnvelope(EnvelopeKind.CHANNEL, '', Buffer.from(messageHead(CHANNEL)));
  const payload = buildMessagePayload(head, 7, 'ab12', '"héllo"');
  const envelope = decodeEnvelope(payload)!;
  assert.equal(envelope.kind, EnvelopeKind.CHANNEL);
  assert.equal(envelope.body.toString('utf8'), encodeMessage(CHANNEL, 7, 'ab12', '"héllo"'));
});

test('the Redis script\'s expression is the layout written in Lua, constants quoted as Lua strings', () => {
  assert.equal(
    luaMessagePayload({ head: 'ARGV[5]', offset: 'offset', epoch: 'epoch', data: 'ARGV[6]' }),
    `ARGV[5] .. offset .. ',"epoch":"' .. epoch .. '","data":' .. ARGV[6] .. '}'`,
  );
});

test('the scanner reads offset and epoch of a payload body, and keeps its position for bytes not so laid out', () => {
  const scanner = new MessageScanner(CHANNEL);
  assert.equal(scanner.offsetAt, Buffer.byteLength('{"type":"message","channel":"a/b=c+d@e","offset":'));
  assert.equal(scanner.epoch, undefined);
  assert.equal(scanner.scan(Buffer.from(encodeMessage(CHANNEL, 1234567, 'e1', '{"offset":99,"epoch":"zz"}'))), true);
  assert.deepEqual([scanner.offset, scanner.epoch], [1234567, 'e1']);
  assert.equal(scanner.scan(Buffer.from(encodeMessage(CHANNEL, 1234568, 'e1', 'null'))), true);
  assert.deepEqual([scanner.offset, scanner.epoch], [1234568, 'e1']);
  // A new epoch (history lost, offsets restarted) is picked up.
  assert.equal(scanner.scan(Buffer.from(encodeMessage(CHANNEL, 1, 'f2f2', 'true'))), true);
  assert.deepEqual([scanner.offset, scanner.epoch], [1, 'f2f2']);

  const head = messageHead(CHANNEL);
  for (const bad of [
    `${head},"epoch":"e9","data":1}`, // no digits
    `${head}5,"epoc":"e9","data":1}`, // not the epoch opener
    `${head}5,"epoch":"e9`, // no closing quote
    `${head}5,"ep`, // cut inside the opener
    `${head}5`, // cut after the digits
    head.slice(0, -3),
  ]) {
    assert.equal(scanner.scan(Buffer.from(bad)), false, bad);
    assert.deepEqual([scanner.offset, scanner.epoch], [1, 'f2f2'], bad);
  }
  scanner.set(10, 'a0');
  assert.deepEqual([scanner.offset, scanner.epoch], [10, 'a0']);
});

test('the scanner finds the offset after a head with multi-byte characters (byte length, not string length)', () => {
  const channel = 'ü☃';
  const scanner = new MessageScanner(channel);
  assert.equal(scanner.scan(Buffer.from(encodeMessage(channel, 77, 'b0', '"x"'))), true);
  assert.deepEqual([scanner.offset, scanner.epoch], [77, 'b0']);
});
