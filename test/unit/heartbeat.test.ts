/**
 * The heartbeat wheel (src/node/heartbeat.ts), driven tick by tick: pings spread over the slices
 * of a round, sockets heard from are not pinged, silent ones are cut in a bounded number of
 * ticks; the ping frame is what ws's receiver reads as a ping.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HEARTBEAT_MAX_SLICES, HeartbeatWheel, PING_FRAME, slicesFor } from '../../src/node/heartbeat.js';
import { Receiver } from '../../src/transport/ws-internals.js';

interface Peer {
  readonly id: number;
}

/** A wheel of `n` peers in `slices` slots that records whom each tick pinged and cut. */
function wheelOf(n: number, slices: number) {
  const pinged: number[][] = [];
  const cut: number[][] = [];
  const wheel = new HeartbeatWheel<Peer>(slices, {
    ping: (p) => pinged.at(-1)!.push(p.id),
    terminate: (p) => {
      cut.at(-1)!.push(p.id);
      wheel.delete(p); // as the socket's 'close' would
    },
  });
  const peers: Peer[] = Array.from({ length: n }, (_, id) => ({ id }));
  for (const p of peers) wheel.add(p);
  /** Runs `ticks` ticks; returns the pings and cuts of each. */
  const run = (ticks: number, beforeEach: (tick: number) => void = () => {}) => {
    const from = pinged.length;
    for (let t = 0; t < ticks; t++) {
      pinged.push([]);
      cut.push([]);
      beforeEach(t);
      wheel.tick();
    }
    return { pinged: pinged.slice(from), cut: cut.slice(from) };
  };
  return { wheel, peers, run };
}

test('an interval is cut into ~100 ms slices, at most HEARTBEAT_MAX_SLICES of them', () => {
  assert.deepEqual(slicesFor(25), { slices: 250, tickMs: 100 });
  assert.deepEqual(slicesFor(0.3), { slices: 3, tickMs: 100 });
  assert.deepEqual(slicesFor(0.05), { slices: 1, tickMs: 50 });
  assert.deepEqual(slicesFor(3600), { slices: HEARTBEAT_MAX_SLICES, tickMs: 6000 });
});

test('the pings of one round are spread evenly over its slices, each silent socket pinged once', () => {
  const { wheel, run } = wheelOf(1000, 10);
  assert.equal(wheel.size, 1000);
  // A socket just added counts as heard from: the first round pings nobody.
  const first = run(10);
  assert.deepEqual(first.pinged.map((p) => p.length), Array(10).fill(0));
  const second = run(10);
  assert.deepEqual(second.pinged.map((p) => p.length), Array(10).fill(100), 'each tick pings a tenth');
  assert.deepEqual(second.pinged.flat().sort((a, b) => a - b), Array.from({ length: 1000 }, (_, i) => i), 'everyone once');
  assert.deepEqual(second.cut.flat(), []);
});

test('a socket heard from since its previous visit is not pinged; one silent after its ping is cut within three visits of its last frame', () => {
  const slices = 8;
  const { wheel, peers, run } = wheelOf(64, slices);
  const talkers = new Set(peers.filter((p) => p.id % 2 === 0));
  const answerers = new Set(peers.filter((p) => p.id % 4 === 1));
  // Talkers send a message before every tick; answerers answer every ping; the rest are silent.
  const traffic = () => {
    for (const p of talkers) wheel.heard(p);
  };
  const pingedOf = new Map<number, number>();
  const cutAt = new Map<number, number>();
  for (let round = 0; round < 4; round++) {
    const { pinged, cut } = run(slices, traffic);
    for (const id of pinged.flat()) {
      pingedOf.set(id, (pingedOf.get(id) ?? 0) + 1);
      if (answerers.has(peers[id]!)) wheel.heard(peers[id]!); // the pong
    }
    for (const id of cut.flat()) cutAt.set(id, round);
  }
  for (const p of talkers) assert.equal(pingedOf.get(p.id), undefined, `talker ${p.id} was pinged`);
  // Answerers: round 0 nothing (just added), 1 ping, 2 nothing (the pong), 3 ping.
  for (const p of answerers) assert.equal(pingedOf.get(p.id), 2, `answerer ${p.id}`);
  const silent = peers.filter((p) => !talkers.has(p) && !answerers.has(p));
  assert.equal(silent.length, 16);
  // Silent from the start: visit 0 counts the handshake, visit 1 pings, visit 2 cuts.
  for (const p of silent) {
    assert.equal(pingedOf.get(p.id), 1, `silent ${p.id} pinged once`);
    assert.equal(cutAt.get(p.id), 2, `silent ${p.id} cut at its third visit`);
  }
  assert.equal(wheel.size, 64 - 16);
  assert.deepEqual([...cutAt.keys()].filter((id) => !silent.includes(peers[id]!)), [], 'only the silent are cut');
});

test('a socket that stops talking is cut on the third visit after its last frame, never before', () => {
  const slices = 5;
  const { wheel, peers, run } = wheelOf(1, slices);
  const peer = peers[0]!;
  const slot = wheel.slotOf(peer)!;
  run(slices * 3, () => wheel.heard(peer)); // talks for three rounds
  const after = run(slices * 4); // then nothing
  const pings = after.pinged.map((p) => p.length);
  const cuts = after.cut.map((c) => c.length);
  const visits = [0, slices, slices * 2].map((t) => t + slot);
  assert.deepEqual(pings.flatMap((n, t) => (n ? [t] : [])), [visits[1]], 'one ping, at the second visit');
  assert.deepEqual(cuts.flatMap((n, t) => (n ? [t] : [])), [visits[2]], 'cut at the third');
});

test('slots are filled round robin, so a burst of new sockets spreads over the round', () => {
  const { wheel, peers } = wheelOf(25, 10);
  const perSlot = Array(10).fill(0);
  for (const p of peers) perSlot[wheel.slotOf(p)!]++;
  assert.deepEqual(perSlot, [3, 3, 3, 3, 3, 2, 2, 2, 2, 2]);
  assert.equal([...wheel].length, 25, 'iterating the wheel gives every socket');
  assert.equal(wheel.delete(peers[0]!), true);
  assert.equal(wheel.delete(peers[0]!), false, 'deleting twice is harmless');
  assert.equal(wheel.size, 24);
  assert.equal(wheel.slotOf(peers[0]!), undefined, 'nothing kept of a socket that left');
  wheel.heard(peers[0]!); // a late pong of a socket that left: ignored
  assert.equal(wheel.size, 24);
});

test('PING_FRAME is one complete empty ping, as ws reads it', () => {
  const pings: Buffer[] = [];
  const receiver = new Receiver({ isServer: false });
  receiver.on('ping', (data: Buffer) => pings.push(data));
  receiver.write(Buffer.concat([PING_FRAME, PING_FRAME]));
  assert.equal(pings.length, 2);
  assert.equal(pings[0]!.length, 0);
});

test('sample: every socket twice per round, at its own slot and half a round later (once each in a wheel of one slot twice)', () => {
  for (const slices of [4, 5, 1]) {
    const samples: number[][] = [];
    const wheel = new HeartbeatWheel<Peer>(slices, { ping: () => {}, terminate: () => {}, sample: (p) => samples.at(-1)!.push(p.id) });
    for (let id = 0; id < slices; id++) wheel.add({ id });
    for (let t = 0; t < slices; t++) {
      samples.push([]);
      wheel.tick();
    }
    const half = Math.floor(slices / 2);
    for (let t = 0; t < slices; t++) assert.deepEqual(samples[t], [t, (t + half) % slices], `tick ${t} of ${slices}`);
    // Over a round, each socket is sampled twice.
    const counts = samples.flat().reduce((m, id) => m.set(id, (m.get(id) ?? 0) + 1), new Map<number, number>());
    assert.deepEqual([...counts.values()], Array(slices).fill(2));
  }
});
