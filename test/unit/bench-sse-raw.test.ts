/**
 * The load generator's SSE lane (bench/sse-raw.ts) against a real HTTP server on port 0 that
 * writes its stream in pieces: events split anywhere between reads are read whole, once each; a
 * refused stream and a chunked one end the client with a reason that says so.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { SseClient } from '../../bench/sse-raw.js';
import { parseStamp, stamp } from '../../bench/ws-raw.js';

async function serve(handler: (res: ServerResponse) => void): Promise<Server> {
  const server = createServer((_req, res) => handler(res));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return server;
}

/** Opens a client and resolves with what it saw once it closes (after `until` data events, or 10 s). */
function read(server: Server, until: number): Promise<{ ready: boolean; seqs: number[]; reason: string }> {
  const { port } = server.address() as AddressInfo;
  const seqs: number[] = [];
  const out = new Float64Array(1);
  let ready = false;
  return new Promise((resolve) => {
    const client: SseClient = new SseClient({
      host: '127.0.0.1',
      port,
      path: '/ws/v1/sse?channel=bench',
      onReady: () => (ready = true),
      onText: (buf, start, end) => {
        seqs.push(parseStamp(buf, start, end, out));
        if (seqs.length === until) client.close();
      },
      onClose: (reason) => {
        clearTimeout(deadline);
        resolve({ ready, seqs, reason });
      },
    });
    // A client that misses events would wait forever: it gives up, and the test says what it saw.
    const deadline = setTimeout(() => client.close(), 10_000);
  });
}

const event = (type: string, data: string, id?: string) => `${id ? `id: ${id}\n` : ''}event: ${type}\ndata: ${data}\n\n`;

test('SSE lane: events split at every byte between writes are each read whole, once, after subscribed', async () => {
  const messages = [1, 2, 3].map((seq) => event('message', `{"type":"message","channel":"bench","offset":${seq},"epoch":"e","data":"${stamp(seq, 1000 + seq)}"}`, `eyJ${seq}`));
  const stream = `:\n\nretry: 1000\n\n${event('connected', '{"type":"connected","client":"c","node":"n"}')}${event('subscribed', '{"type":"subscribed","channel":"bench","offset":0,"epoch":"e"}', 'eyJ0')}:\n\n${messages.join('')}`;
  const server = await serve(async (res) => {
    res.useChunkedEncodingByDefault = false;
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.socket!.setNoDelay(true);
    // One byte at a time, each on its own turn: every split point between reads occurs.
    for (const ch of stream) {
      res.write(ch);
      await new Promise((r) => setImmediate(r));
    }
  });
  try {
    const seen = await read(server, 3);
    assert.equal(seen.ready, true);
    assert.deepEqual(seen.seqs, [1, 2, 3], 'connected and subscribed are not measured; each message once');
    assert.equal(seen.reason, 'closed by client');
  } finally {
    server.closeAllConnections();
    server.close();
  }
});

test('SSE lane: a refused stream, a chunked one and a close event end the client with a reason', async () => {
  const cases: [string, (res: ServerResponse) => void, RegExp][] = [
    ['refused', (res) => res.writeHead(403, { 'content-type': 'text/plain' }).end('origin not allowed\n'), /^stream refused: HTTP\/1\.1 403 Forbidden origin not allowed$/],
    ['chunked', (res) => res.writeHead(200, { 'content-type': 'text/event-stream' }).write(':\n\n'), /chunked/],
    [
      'close',
      (res) => {
        res.useChunkedEncodingByDefault = false;
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write(`${event('subscribed', '{"type":"subscribed","channel":"bench"}')}${event('close', '{"code":1001,"reason":"node draining"}')}`);
      },
      /^server closed \{"code":1001,"reason":"node draining"\}$/,
    ],
  ];
  for (const [name, handler, reason] of cases) {
    const server = await serve(handler);
    try {
      const seen = await read(server, Infinity);
      assert.match(seen.reason, reason, name);
      assert.deepEqual(seen.seqs, [], name);
    } finally {
      server.closeAllConnections();
      server.close();
    }
  }
});
