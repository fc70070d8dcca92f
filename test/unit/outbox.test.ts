/**
 * The outbox (src/node/outbox.ts): framing, flushing, coalescing, streaming, slow sockets.
 *
 * test-runner: alone (the 'auto' coalescing cases time real flushes: a loaded machine has no time to spare).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Client } from '../../src/transport/client.js';
import { EventEmitter } from 'node:events';
import { frameText, Outbox, STREAM_HIGH_WATER } from '../../src/node/outbox.js';
import { Receiver } from '../../src/transport/ws-internals.js';
import { until } from '../../harness/wait.js';

/** What the outbox reads of a Client (its own state is its own), on `socket`. */
function clientOn(socket: unknown): Client {
  return { outbox: null, open: true, socket } as unknown as Client;
}

/** A client whose socket records its writes. */
function fakeClient(writes: Buffer[], writableLength = () => 0): Client {
  return clientOn({ write: (b: Buffer) => writes.push(b), get writableLength() { return writableLength(); } });
}

/** Parses server frames with ws's own receiver. */
function parseFrames(bytes: Buffer): string[] {
  const out: string[] = [];
  const receiver = new Receiver({ isServer: false });
  receiver.on('message', (data: Buffer) => out.push(data.toString()));
  receiver.write(bytes);
  return out;
}

test('frames a turn puts on a socket go out as one write, in order', async () => {
  const writesA: Buffer[] = [];
  const writesB: Buffer[] = [];
  const a = fakeClient(writesA);
  const b = fakeClient(writesB);
  const outbox = new Outbox({ maxBuffered: 1 << 20, onSlowConsumer: () => assert.fail('not slow') });
  for (let i = 0; i < 50; i++) outbox.broadcast([a, b], frameText(`m${i}`));
  assert.equal(writesA.length, 0, 'nothing is written before the turn ends');
  await new Promise((r) => setImmediate(r));
  assert.equal(writesA.length, 1);
  assert.equal(writesB.length, 1);
  assert.deepEqual(parseFrames(writesA[0]!), Array.from({ length: 50 }, (_, i) => `m${i}`));
  outbox.send(a, frameText('next turn'));
  await new Promise((r) => setImmediate(r));
  assert.equal(writesA.length, 2);
  assert.deepEqual(parseFrames(writesA[1]!), ['next turn']);
});

test('a message is framed once and shared by every socket', () => {
  const frame = frameText('shared');
  const writes: Buffer[] = [];
  const clients = [fakeClient(writes), fakeClient(writes)];
  const outbox = new Outbox({ maxBuffered: 1 << 20, onSlowConsumer: () => {} });
  outbox.broadcast(clients, frame);
  outbox.flush();
  assert.equal(writes[0], frame);
  assert.equal(writes[1], frame);
});

test('frames of every size decode back to the text', () => {
  for (const size of [0, 125, 126, 65535, 65536, 200_000]) {
    const text = 'x'.repeat(size);
    assert.deepEqual(parseFrames(frameText(text)), [text]);
  }
});

test('a socket whose unsent bytes pass the cap is reported once per flush', () => {
  const slow: Client[] = [];
  let buffered = 0;
  const writes: Buffer[] = [];
  const client = fakeClient(writes, () => buffered);
  const outbox = new Outbox({ maxBuffered: 1000, onSlowConsumer: (c) => slow.push(c) });
  outbox.send(client, frameText('a'));
  outbox.flush();
  assert.equal(slow.length, 0);
  buffered = 5000;
  outbox.send(client, frameText('b'));
  outbox.flush();
  assert.deepEqual(slow, [client]);
});

/**
 * Sends 'first' after a quiet spell (written at the end of its turn), then 'second' and 'third'
 * on the next turns: they must be held past those turns, then go out joined in one write.
 */
async function sendFirstThenTwoHeld(outbox: Outbox, client: Client, writes: Buffer[]): Promise<void> {
  outbox.send(client, frameText('first'));
  await new Promise((r) => setImmediate(r));
  assert.equal(writes.length, 1, 'the first message after a quiet spell is not delayed');
  outbox.send(client, frameText('second'));
  await new Promise((r) => setImmediate(r));
  outbox.send(client, frameText('third'));
  await new Promise((r) => setImmediate(r));
  assert.equal(writes.length, 1, 'messages right after a flush wait for the gap');
  await until(() => writes.length >= 2, { intervalMs: 5, what: 'the held frames to be written' });
  assert.deepEqual(parseFrames(writes[1]!), ['second', 'third']);
}

test('with coalesceMs, a quiet socket is written at the end of the turn and a busy one at most every coalesceMs, frames joined', async () => {
  const writes: Buffer[] = [];
  const times: number[] = [];
  const client = fakeClient(writes);
  const outbox = new Outbox({ maxBuffered: 1 << 20, onSlowConsumer: () => {}, coalesceMs: 40, onFlush: () => times.push(performance.now()) });
  await sendFirstThenTwoHeld(outbox, client, writes);
  // Timers may fire up to a millisecond early.
  assert.ok(times[1]! - times[0]! >= 38, `flushes ${times[1]! - times[0]!} ms apart`);
});

test("by default ('auto'), a flush that took microseconds does not delay the next turn's frames", async () => {
  const writes: Buffer[] = [];
  const client = fakeClient(writes);
  const outbox = new Outbox({ maxBuffered: 1 << 20, onSlowConsumer: () => {} });
  for (const text of ['one', 'two', 'three']) {
    outbox.send(client, frameText(text));
    await new Promise((r) => setImmediate(r));
  }
  assert.deepEqual(writes.map(parseFrames), [['one'], ['two'], ['three']]);
});

/** A client whose every write takes `ms` of the event loop, as a broadcast to many sockets does. */
function slowClient(ms: number): { client: Client; writes: Buffer[]; writeTimes: number[] } {
  const writes: Buffer[] = [];
  const writeTimes: number[] = [];
  const client = fakeClient(writes);
  (client.socket as unknown as { write: (b: Buffer) => void }).write = (b: Buffer) => {
    const start = performance.now();
    writeTimes.push(start);
    writes.push(b);
    while (performance.now() - start < ms);
  };
  return { client, writes, writeTimes };
}

test("by default ('auto'), a busy node (writing every message alone would fill its time) waits 4T after a flush that took T ms, frames joined", async () => {
  const { client, writes, writeTimes } = slowClient(10);
  const outbox = new Outbox({ maxBuffered: 1 << 20, onSlowConsumer: () => {} });
  // A message every turn, each flush taking 10 ms: the event loop is busy all the time.
  const until300 = performance.now() + 300;
  while (performance.now() < until300) {
    outbox.send(client, frameText('load'));
    await new Promise((r) => setImmediate(r));
  }
  await until(() => outbox.pending === 0, { intervalMs: 5, what: 'the load to be written' });
  const before = writes.length;
  outbox.send(client, frameText('second'));
  outbox.send(client, frameText('third'));
  await new Promise((r) => setImmediate(r));
  await until(() => writes.length > before, { intervalMs: 2, what: 'the held frames to be written' });
  assert.deepEqual(parseFrames(writes.at(-1)!), ['second', 'third']);
  // Timers may fire up to a millisecond early.
  assert.ok(writeTimes.at(-1)! - writeTimes.at(-2)! >= 38, `writes ${writeTimes.at(-1)! - writeTimes.at(-2)!} ms apart`);
});

test("by default ('auto'), a node with time to spare writes at the end of the turn, even after a flush that took milliseconds", async () => {
  const { client, writes, writeTimes } = slowClient(10);
  const outbox = new Outbox({ maxBuffered: 1 << 20, onSlowConsumer: () => {} });
  // A 10 ms flush every 50 ms: a fifth of the time, for longer than the node's window.
  for (let i = 0; i < 8; i++) {
    outbox.send(client, frameText(`m${i}`));
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.equal(writes.length, 8);
  // Now two messages on consecutive turns, straight after a flush: neither waits for a gap.
  outbox.send(client, frameText('next'));
  await new Promise((r) => setImmediate(r));
  outbox.send(client, frameText('and next'));
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(writes.slice(-2).map(parseFrames), [['next'], ['and next']]);
  assert.ok(writeTimes.at(-1)! - writeTimes.at(-2)! < 30, `written on consecutive turns, ${writeTimes.at(-1)! - writeTimes.at(-2)!} ms apart`);
});

/** A client whose socket buffers what it is given until the test drains it, as a real one does. */
function bufferingClient(): { client: Client; writes: Buffer[]; unsent: () => number; drain: () => void } {
  const writes: Buffer[] = [];
  let unsent = 0;
  const socket = new EventEmitter() as EventEmitter & { write(b: Buffer): boolean; readonly writableLength: number };
  socket.write = (b: Buffer) => {
    writes.push(b);
    unsent += b.length;
    return false;
  };
  Object.defineProperty(socket, 'writableLength', { get: () => unsent });
  const client = clientOn(socket);
  return {
    client,
    writes,
    unsent: () => unsent,
    drain: () => {
      unsent = 0;
      socket.emit('drain');
    },
  };
}

test('a reply larger than --max-buffered streams in slices as the socket drains, in order, and does not count as slow', () => {
  const { client, writes, unsent, drain } = bufferingClient();
  let slow = 0;
  const outbox = new Outbox({ maxBuffered: 256 * 1024, onSlowConsumer: () => slow++ });
  const frames = Array.from({ length: 64 }, (_, i) => frameText(`${i} ${'r'.repeat(16 * 1024)}`));
  for (const frame of frames) outbox.reply(client, frame);
  outbox.send(client, frameText('after the reply'));
  outbox.flush();
  assert.ok(unsent() <= STREAM_HIGH_WATER + 17 * 1024, `the socket holds ${unsent()} bytes, not the whole reply`);
  let rounds = 0;
  while (outbox.holding(client) && rounds++ < 1000) {
    drain();
    assert.ok(unsent() <= STREAM_HIGH_WATER + 17 * 1024);
  }
  assert.equal(outbox.holding(client), false, 'everything went out');
  assert.equal(outbox.unsentReplyBytes(client), 0);
  assert.equal(slow, 0, 'a client that reads is never slow');
  assert.deepEqual(parseFrames(Buffer.concat(writes)), [...frames.map((_, i) => `${i} ${'r'.repeat(16 * 1024)}`), 'after the reply']);
});

test('frames behind a stalled reply count towards --max-buffered: a client that stops reading is reported', () => {
  const { client } = bufferingClient();
  let slow = 0;
  const outbox = new Outbox({ maxBuffered: 64 * 1024, onSlowConsumer: () => slow++ });
  for (let i = 0; i < 32; i++) outbox.reply(client, frameText('r'.repeat(16 * 1024)));
  outbox.flush();
  assert.equal(slow, 0, 'the reply alone is what the client asked for');
  for (let i = 0; i < 3; i++) outbox.send(client, frameText('l'.repeat(16 * 1024)));
  outbox.flush();
  assert.equal(slow, 0, '48 KB of live frames held: under the cap');
  for (let i = 0; i < 2; i++) outbox.send(client, frameText('l'.repeat(16 * 1024)));
  outbox.flush();
  assert.equal(slow, 1, 'past --max-buffered of frames it did not ask for');
});

test('a socket that closes while a reply streams to it is forgotten: nothing more is written to it', () => {
  const { client, writes, drain } = bufferingClient();
  const outbox = new Outbox({ maxBuffered: 256 * 1024, onSlowConsumer: () => assert.fail('not slow') });
  for (let i = 0; i < 16; i++) outbox.reply(client, frameText('r'.repeat(16 * 1024)));
  outbox.flush();
  assert.equal(outbox.holding(client), true);
  assert.ok(outbox.unsentReplyBytes(client) > 0);
  const written = writes.length;
  outbox.closed(client); // as the node's sockets do on 'close'
  assert.equal(outbox.holding(client), false);
  assert.equal(outbox.unsentReplyBytes(client), 0);
  drain();
  assert.equal(writes.length, written, 'the held frames were dropped with the socket');
});
