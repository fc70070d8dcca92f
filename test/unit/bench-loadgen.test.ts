import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HISTOGRAM_SIZE, latencyBucket, quantile } from '../../bench/loadgen-shared.js';
import { clientFrame, parseStamp, stamp } from '../../bench/ws-raw.js';
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
