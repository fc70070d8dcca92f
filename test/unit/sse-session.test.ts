/**
 * The SSE session's wire work on its own (transport/sse-session.ts): pre-framed WebSocket frames
 * in, SSE events out (as the SDK's parser reads them back), positions kept for a resume, plain
 * mode's channel positions; and the SDK's parser on awkward chunking.
 */
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import type { ServerResponse } from 'node:http';
import { test } from 'node:test';
import { SseParser } from '../../client/sse-socket.js';
import { frameText } from '../../src/node/outbox.js';
import { PING_FRAME } from '../../src/node/heartbeat.js';
import { encodeMessage } from '../../src/protocol/message-frame.js';
import { PlainPositions, REPLAY_BYTES, SseSession } from '../../src/transport/sse-session.js';

/** A response that keeps what is written (nothing stays unsent). */
class Sink extends EventEmitter {
  readonly chunks: string[] = [];
  writableLength = 0;
  writableEnded = false;
  writableFinished = false;
  write(chunk: Buffer | string): boolean {
    this.chunks.push(chunk.toString());
    return true;
  }
  end(chunk?: string): void {
    if (chunk) this.chunks.push(chunk);
    this.writableEnded = this.writableFinished = true;
  }
  destroy(): void {
    this.writableEnded = true;
  }
  get text(): string {
    return this.chunks.join('');
  }
}

const asRes = (sink: Sink) => sink as unknown as ServerResponse;

test('frames become events: one per text frame, ids count them, a batch of frames in one write, a ping is no event', () => {
  const session = new SseSession({ id: 's', plain: false, stuckMs: 0 });
  const sink = new Sink();
  session.attach(asRes(sink));
  const big = JSON.stringify({ type: 'message', data: 'x'.repeat(70_000) });
  session.write(Buffer.concat([frameText('{"type":"ack","id":1}'), frameText('{"type":"ack","id":2}')]));
  session.write(PING_FRAME);
  session.write(frameText(big));
  const events = new SseParser().feed(sink.text);
  assert.deepEqual(events.map((e) => e.id), ['1', '2', '3']);
  assert.deepEqual(events.map((e) => e.event), ['message', 'message', 'message'], 'no event names in session mode');
  assert.equal(events[2]!.data, big, 'a frame with a 64-bit length arrives whole');
  assert.equal(session.bytesWritten, Buffer.byteLength(sink.text));
});

test('a resume replays what came after the id the client saw; an id no longer kept is refused', () => {
  const session = new SseSession({ id: 's', plain: false, stuckMs: 0 });
  const first = new Sink();
  session.attach(asRes(first));
  for (let i = 1; i <= 3; i++) session.write(frameText(`{"type":"ack","id":${i}}`));
  first.emit('close');
  assert.equal(session.attached, false);
  session.write(frameText('{"type":"ack","id":4}'));
  assert.ok(session.writableLength > 0, 'what is written meanwhile counts as unsent');
  const second = new Sink();
  assert.equal(session.attach(asRes(second), 2), true);
  assert.deepEqual(new SseParser().feed(second.text).map((e) => [e.id, JSON.parse(e.data).id]), [['3', 3], ['4', 4]]);
  // Fill past what is kept: the oldest ids can no longer be resumed from.
  const chunk = JSON.stringify({ type: 'ack', pad: 'y'.repeat(10_000) });
  for (let i = 0; i < Math.ceil(REPLAY_BYTES / 10_000) + 2; i++) session.write(frameText(chunk));
  assert.equal(session.canResume(1), false);
  assert.equal(session.canResume(Number(new SseParser().feed(second.text).at(-1)!.id)), true);
  // A resume while the stream still looks open (half-open) takes over: the old one is cut.
  const last = Number(new SseParser().feed(second.text).at(-1)!.id);
  session.write(frameText('{"type":"ack","id":99}'));
  const third = new Sink();
  assert.equal(session.attach(asRes(third), last), true);
  assert.equal(second.writableEnded, true, 'the old stream is cut');
  assert.deepEqual(new SseParser().feed(third.text).map((e) => JSON.parse(e.data).id), [99]);
  session.close(1001, 'node draining');
  assert.match(third.text, /event: close\ndata: \{"code":1001,"reason":"node draining"\}\n\n$/);
});

test('plain mode: events named after their type, ids carry every channel\'s position and come back as since', () => {
  const session = new SseSession({ id: 's', plain: true, stuckMs: 0 });
  const sink = new Sink();
  session.attach(asRes(sink));
  session.write(frameText('{"type":"subscribed","channel":"a","offset":4,"epoch":"e1"}'));
  session.write(frameText(encodeMessage('b:"x"', 7, 'e2', '{"n":1}')));
  session.write(frameText('{"type":"ping"}'));
  const events = new SseParser().feed(sink.text);
  assert.deepEqual(events.map((e) => e.event), ['subscribed', 'message', 'ping']);
  assert.equal(events[2]!.id, undefined, 'an event that moves no channel carries no id');
  const positions = PlainPositions.parse(events[1]!.id, 100);
  assert.deepEqual(positions.get('a'), { offset: 4, epoch: 'e1' });
  assert.deepEqual(positions.get('b:"x"'), { offset: 7, epoch: 'e2' });
  assert.equal(PlainPositions.parse('not base64 json', 100).get('a'), undefined, 'junk is no position');
});

test('the SDK parser: CRLF, chunks split anywhere, comments, multi-line data', () => {
  const parser = new SseParser();
  const text = ': hi\r\nid: 7\r\nevent: x\r\ndata: a\r\ndata: b\r\n\r\ndata: c\n\n';
  const events = [...text].flatMap((ch) => parser.feed(ch));
  assert.deepEqual(events, [
    { id: '7', event: 'x', data: 'a\nb' },
    { id: undefined, event: 'message', data: 'c' },
  ]);
  assert.equal(parser.lastEventId, '7');
});
