import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HISTOGRAM_SIZE, latencyBucket, quantile } from '../../bench/loadgen-shared.js';
import { isPusherPing, pusherSetup, pusherSubscribe } from '../../bench/pusher-wire.js';
import { clientFrame, parseStamp, stamp } from '../../bench/ws-raw.js';
import { decodePusher, encodePusher, PUSHER_PING } from '../../src/protocol/pusher.js';
import { Receiver } from '../../src/transport/ws-internals.js';

test('parseStamp reads the sequence and send time wherever the payload sits', () => {
  const out = new Float64Array(1);
  for (const text of [`Received: ${stamp(12, 345)}`, `42["message","Received: ${stamp(12, 345)}"]`, `{"type":"message","data":"${stamp(12, 345)}"}`]) {
    const buf = Buffer.from(`xx${text}yy`);
    assert.equal(parseStamp(buf, 2, buf.length - 2, out), 12, text);
    assert.equal(out[0], 345);
  }
  const plain = Buffer.from('Received: hello # not a stamp');
  assert.equal(parseStamp(plain, 0, plain.length, out), -1);
  // A stamp beyond the frame's end is not this frame's.
  const next = Buffer.from(`abc${stamp(1, 2)}`);
  assert.equal(parseStamp(next, 0, 3, out), -1);
});

test('the Pusher lane: the stamp is found in an event whose data is JSON text, the node\'s ping is told from events, and the subscribe is one the node decodes', () => {
  const out = new Float64Array(1);
  const event = Buffer.from(encodePusher('bench', JSON.stringify({ t: stamp(7, 890) }), 'bench'));
  assert.match(event.toString(), /^\{"event":"bench","channel":"bench","data":"\{\\"t\\":\\"#7\|890#\\"\}"\}$/);
  assert.equal(parseStamp(event, 0, event.length, out), 7);
  assert.equal(out[0], 890);
  const ping = Buffer.from(`xx${PUSHER_PING}yy`);
  assert.equal(isPusherPing(ping, 2, ping.length - 2), true);
  assert.equal(isPusherPing(event, 0, event.length), false);
  const pong = Buffer.from(PUSHER_PING.replace('ping', 'pong'));
  assert.equal(isPusherPing(pong, 0, pong.length), false, 'same length, another event');
  assert.deepEqual(decodePusher(pusherSubscribe('bench')), { ok: true, frame: { event: 'pusher:subscribe', channel: 'bench', auth: '', channelData: undefined } });
  assert.equal(pusherSetup(encodePusher('pusher:connection_established', { socket_id: '1.2', activity_timeout: 120 })), 'established');
  assert.equal(pusherSetup(encodePusher('pusher_internal:subscription_succeeded', {}, 'bench')), 'subscribed');
  assert.equal(pusherSetup(encodePusher('pusher:subscription_error', { type: 'AuthError', status: 401 }, 'bench')), 'refused');
});

test('clientFrame builds masked frames a ws server accepts, at every length form', async () => {
  for (const size of [0, 5, 125, 126, 70_000]) {
    const payload = 'x'.repeat(size);
    const receiver = new Receiver({ isServer: true, maxPayload: 1 << 20 });
    const got = new Promise<string>((resolve) => receiver.on('message', (data: Buffer) => resolve(data.toString())));
    receiver.write(clientFrame(payload));
    assert.equal(await got, payload);
  }
});

test('latency histogram: quantiles come back within a bucket', () => {
  const hist = new Uint32Array(HISTOGRAM_SIZE);
  for (let us = 0; us < 1_000_000; us += 1000) hist[latencyBucket(us)]!++;
  assert.ok(Math.abs(quantile(hist, 0.5) - 500_000) <= 1000);
  assert.ok(Math.abs(quantile(hist, 0.99) - 990_000) <= 1000);
  assert.ok(Number.isNaN(quantile(new Uint32Array(HISTOGRAM_SIZE), 0.5)));
});
