/**
 * What names and bytes a client chooses cost a node (issue 24, "Done when"): a real `fanout serve`
 * (memory bus and history, anonymous) as a child process, its live heap read after a full GC
 * (bench/peers/gc-on-signal.cjs: SIGUSR2 → two GCs → heapUsed and arrayBuffers over IPC).
 */
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import WebSocket from 'ws';
import { forkFanoutServe, type ServerProcess } from '../../harness/fanout-process.js';
import { untilEvent } from '../../harness/wait.js';
import { scrape } from '../helpers/metrics.js';

const GC_ON_SIGNAL = fileURLToPath(new URL('../../../bench/peers/gc-on-signal.cjs', import.meta.url));
const MB = 1024 * 1024;

/** A node that reports its memory after a full GC on SIGUSR2. */
function forkMeasuredNode(args: readonly string[]): Promise<ServerProcess> {
  return forkFanoutServe(args, { execArgv: ['--expose-gc', '--require', GC_ON_SIGNAL] });
}

/** The node's live heap (bytes), after two full GCs; with `buffers`, plus its Buffers' memory (outside the heap). */
async function liveHeap(node: ServerProcess, buffers = false): Promise<number> {
  const reply = untilEvent<[{ type?: string; heapUsed?: number; arrayBuffers?: number }]>(node.child, 'message', {
    filter: (m) => m?.type === 'bench-memory',
    failOn: ['exit'],
    timeoutMs: 30_000,
    what: 'the node to report its heap',
  });
  node.child.kill('SIGUSR2');
  const [message] = await reply;
  return message.heapUsed! + (buffers ? message.arrayBuffers! : 0);
}

/** An open /ws/v1 socket, past its `connected` frame. */
async function open(port: number): Promise<WebSocket> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/ws/v1`);
  await untilEvent(ws, 'message', { failOn: ['error', 'close'], timeoutMs: 5000, what: 'the connected frame' });
  return ws;
}

interface Reply {
  type: string;
  id?: number;
  code?: string;
  message?: string;
  epoch?: string;
  recovered?: boolean;
}

/** Requests with an id, each resolved by the reply that echoes it (one listener per socket). */
function asker(): (ws: WebSocket, frame: Record<string, unknown>) => Promise<Reply> {
  const waiting = new Map<number, (reply: Reply) => void>();
  const listening = new WeakSet<WebSocket>();
  let ids = 0;
  return (ws, frame) => {
    if (!listening.has(ws)) {
      listening.add(ws);
      ws.on('message', (data) => {
        const reply = JSON.parse(data.toString()) as Reply;
        if (reply.id === undefined) return;
        waiting.get(reply.id)?.(reply);
        waiting.delete(reply.id);
      });
    }
    const id = ++ids;
    ws.send(JSON.stringify({ ...frame, id }));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no reply to ${String(frame['type'])} ${String(frame['channel'])}`)), 10_000);
      waiting.set(id, (reply) => {
        clearTimeout(timer);
        resolve(reply);
      });
    });
  };
}

/**
 * Per connection, `count` fresh names `prefix<i>`, `window` names at a time: each is read
 * (`history`) and subscribed (with `since` for every other name), and unsubscribed once the
 * `subscribed` reply is in. Resolves with the error codes received (none expected).
 */
function churnNames(ws: WebSocket, prefix: string, count: number, window: number): Promise<string[]> {
  const errors: string[] = [];
  // Per name: bit 1 history answered, bit 2 unsubscribed (or its subscribe refused).
  const state = new Uint8Array(count);
  let next = 0;
  let done = 0;
  return new Promise((resolve, reject) => {
    const start = (i: number): void => {
      const channel = `${prefix}${i}`;
      ws.send(JSON.stringify({ type: 'history', channel, id: i * 4 }));
      const since = i % 2 === 1 ? { offset: 0, epoch: 'not-this-one' } : undefined;
      ws.send(JSON.stringify({ type: 'subscribe', channel, id: i * 4 + 1, since }));
    };
    const finish = (i: number, bit: number): void => {
      state[i]! |= bit;
      if (state[i] !== 3) return;
      done++;
      if (next < count) start(next++);
      else if (done === count) {
        ws.off('message', onMessage);
        resolve(errors);
      }
    };
    const onMessage = (data: WebSocket.RawData): void => {
      const reply = JSON.parse(data.toString()) as Reply;
      if (reply.id === undefined) return;
      const i = Math.floor(reply.id / 4);
      const part = reply.id % 4;
      if (reply.type === 'error') {
        errors.push(reply.code ?? 'error');
        return finish(i, part === 0 ? 1 : 2);
      }
      if (part === 0) return finish(i, 1);
      if (part === 1) return void ws.send(JSON.stringify({ type: 'unsubscribe', channel: `${prefix}${i}`, id: i * 4 + 2 }));
      finish(i, 2);
    };
    ws.on('message', onMessage);
    ws.once('close', () => reject(new Error(`socket closed after ${done} of ${count} names`)));
    while (next < Math.min(window, count)) start(next++);
  });
}

test('400 000 fresh names read, subscribed and unsubscribed by 10 anonymous connections leave the node within 32 MB of where it started', async (t) => {
  const connections = 10;
  const perConnection = 40_000;
  // Stay under the limits as a patient attacker would: the rate and the replies in flight allowed.
  const node = await forkMeasuredNode(['--rate-limit', '100000', '--max-buffered', String(64 * MB)]);
  const sockets: WebSocket[] = [];
  try {
    for (let c = 0; c < connections; c++) sockets.push(await open(node.port));
    // Warm-up: the paths compiled and the maps at their working size before the baseline.
    await Promise.all(sockets.map((ws, c) => churnNames(ws, `warm:${c}:`, 500, 32)));
    const before = await liveHeap(node);
    const started = Date.now();
    const errors = (await Promise.all(sockets.map((ws, c) => churnNames(ws, `n:${c}:`, perConnection, 64)))).flat();
    const seconds = (Date.now() - started) / 1000;
    assert.deepEqual(errors, [], 'every request answered, none refused');
    const after = await liveHeap(node);
    const names = connections * perConnection;
    const growth = after - before;
    t.diagnostic(`${names} names (${3 * names} requests) in ${seconds.toFixed(1)} s; live heap ${(before / MB).toFixed(1)} → ${(after / MB).toFixed(1)} MB: ${(growth / MB).toFixed(1)} MB, ${(growth / names).toFixed(1)} bytes per name`);
    assert.ok(growth < 32 * MB, `the node grew by ${(growth / MB).toFixed(1)} MB for ${names} names`);
  } finally {
    for (const ws of sockets) ws.terminate();
    await node.stop();
  }
});

test('anonymous 16 KB publishes to ever new channels keep memory history within --history-max-bytes; an evicted channel recovers with recovered:false', async (t) => {
  const cap = 8 * MB;
  // --rate-limit-bytes has its own tests: here the publishes come as fast as the node takes them.
  const node = await forkMeasuredNode(['--history-max-bytes', String(cap), '--rate-limit-bytes', '0']);
  const sockets: WebSocket[] = [];
  try {
    for (let c = 0; c < 10; c++) sockets.push(await open(node.port));
    const [first] = sockets;
    const data = 'd'.repeat(16 * 1024 - 2);
    const ask = asker();
    // The channel that will be evicted: one message, its position known to a subscriber.
    assert.equal((await ask(first!, { type: 'publish', channel: 'evicted', data })).type, 'ack');
    const { epoch } = await ask(first!, { type: 'history', channel: 'evicted' });
    const before = await liveHeap(node);

    // 40 MB in all: 2560 messages of 16 KB, each to a channel of its own, 10 connections side by side.
    const perConnection = 256;
    const publishAll = async (ws: WebSocket, c: number): Promise<void> => {
      const window = 16;
      const replies: Array<Promise<Reply>> = [];
      for (let i = 0; i < perConnection; i += window) {
        for (let j = i; j < Math.min(i + window, perConnection); j++) replies.push(ask(ws, { type: 'publish', channel: `p:${c}:${j}`, data }));
        const answered = await Promise.all(replies.splice(0));
        for (const reply of answered) assert.equal(reply.type, 'ack', JSON.stringify(reply));
      }
    };
    await Promise.all(sockets.map(publishAll));
    const after = await liveHeap(node);
    const growth = after - before;
    t.diagnostic(`published ${((10 * perConnection * 16 * 1024) / MB).toFixed(0)} MB; live heap ${(before / MB).toFixed(1)} → ${(after / MB).toFixed(1)} MB (+${(growth / MB).toFixed(1)} MB) under a ${cap / MB} MiB cap`);
    assert.ok(growth < cap + 8 * MB, `the node kept ${(growth / MB).toFixed(1)} MB of a 40 MB flood under an ${cap / MB} MiB cap`);

    const metrics = await scrape(`http://127.0.0.1:${node.port}`);
    const evictions = metrics.value('fanout_history_evictions_total');
    assert.ok(evictions >= 2560 - cap / (16 * 1024), `evictions counted: ${evictions}`);

    // A recovery across the eviction: recovered:false and a new epoch, never a short answer.
    const recovery = await ask(first!, { type: 'subscribe', channel: 'evicted', since: { offset: 1, epoch } });
    assert.equal(recovery.type, 'subscribed');
    assert.equal(recovery.recovered, false);
    assert.notEqual(recovery.epoch, epoch);
  } finally {
    for (const ws of sockets) ws.terminate();
    await node.stop();
  }
});

test('40 subscriptions that each recovered 100 messages of 16 KB (separate reads) do not keep them: the node’s heap and Buffers stay within 16 MB of where they started', async (t) => {
  const node = await forkMeasuredNode(['--rate-limit-bytes', '0', '--max-buffered', String(64 * MB)]);
  const sockets: WebSocket[] = [];
  try {
    const ask = asker();
    const publisher = await open(node.port);
    sockets.push(publisher);
    const data = 'r'.repeat(16 * 1024 - 2);
    for (let i = 0; i < 100; i++) assert.equal((await ask(publisher, { type: 'publish', channel: 'recovered', data })).type, 'ack');
    const { epoch } = await ask(publisher, { type: 'history', channel: 'recovered' });
    for (let c = 0; c < 40; c++) sockets.push(await open(node.port));
    const before = await liveHeap(node, true);
    // One after another, so that each is a read of its own (a batch) with its own recovered frames.
    for (const ws of sockets.slice(1)) {
      const reply = await ask(ws, { type: 'subscribe', channel: 'recovered', since: { offset: 0, epoch } });
      assert.equal(reply.type, 'subscribed', JSON.stringify(reply));
      assert.equal(reply.recovered, true);
    }
    const after = await liveHeap(node, true);
    const growth = after - before;
    t.diagnostic(`40 recoveries of 1.6 MB each sent 64 MB; live heap and Buffers ${(before / MB).toFixed(1)} → ${(after / MB).toFixed(1)} MB (+${(growth / MB).toFixed(1)} MB) with the 40 subscriptions live`);
    assert.ok(growth < 16 * MB, `the node kept ${(growth / MB).toFixed(1)} MB after 40 recoveries of 1.6 MB`);
  } finally {
    for (const ws of sockets) ws.terminate();
    await node.stop();
  }
});
