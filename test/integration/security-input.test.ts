/**
 * Bad input never crashes a node: a battery of malformed handshakes and frames against a real
 * `fanout serve` process, each answered with an HTTP status or a close code, after which the
 * node still serves.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { CloseCode } from '../../src/errors.js';
import { forkFanoutServe, type ServerProcess } from '../../harness/fanout-process.js';
import { closeFrame, frame, rawConnect, rawUpgrade } from '../helpers/raw-ws.js';
import { connect } from '../helpers/ws-client.js';

let proc: ServerProcess;
before(async () => {
  proc = await forkFanoutServe(['--max-payload', '4096']);
});
after(() => proc.stop());

const PROTOCOL_ERROR = 1002;

/** The HTTP status a raw request gets. */
async function statusOf(request: string | Buffer): Promise<number | undefined> {
  const peer = await rawConnect(proc.port);
  peer.write(request);
  await peer.until(() => peer.response !== undefined || peer.ended, 8000, 'an answer');
  peer.destroy();
  return peer.response?.status;
}

/** The close code a raw upgraded peer gets after sending `bytes`. */
async function closeCodeFor(bytes: Buffer): Promise<number | undefined> {
  const peer = await rawUpgrade(proc.port);
  peer.write(bytes);
  const code = await peer.closed(8000);
  peer.destroy();
  return code;
}

async function stillServes(): Promise<void> {
  assert.equal(proc.child.exitCode, null, `node exited: ${proc.output()}`);
  const health = await fetch(`http://127.0.0.1:${proc.port}/healthz`);
  assert.equal(health.status, 200);
  await health.arrayBuffer();
  const client = await connect(`ws://127.0.0.1:${proc.port}/ws/echo`);
  client.send('alive');
  await client.until((m) => m.includes('Received: alive'));
  client.close();
}

test('malformed handshakes get 400, never a 101', async () => {
  const key = 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==';
  const cases: Array<[string, string]> = [
    ['no key', 'GET /ws/echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n'],
    ['bad key', 'GET /ws/echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n\r\n'],
    ['bad version', `GET /ws/echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n${key}\r\nSec-WebSocket-Version: 99\r\n\r\n`],
    ['POST upgrade', `POST /ws/echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`],
    ['garbage request line', 'HELLO THERE\r\n\r\n'],
    ['binary junk', '\x00\x01\x02\xff\xfe\r\n\r\n'],
    ['bad header line', `GET /ws/echo HTTP/1.1\r\nHost: x\r\nthis is not a header\r\n\r\n`],
  ];
  for (const [name, request] of cases) {
    const status = await statusOf(request);
    assert.ok(status === 400 || status === 405, `${name}: got ${status}`);
  }
  await stillServes();
});

test('2000+ headers and oversized headers get 431', async () => {
  const many = Array.from({ length: 2500 }, (_, i) => `X-H${i}: ${i}`).join('\r\n');
  assert.equal(await statusOf(`GET /ws/echo HTTP/1.1\r\nHost: x\r\n${many}\r\n\r\n`), 431);
  assert.equal(await statusOf(`GET /ws/echo HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`), 431);
  // 2001 lines that stay under the 16 KiB size limit: Node alone would keep 2000 and upgrade.
  const upgrade = `Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13`;
  const lines = Array.from({ length: 1996 }, () => 'a: 1').join('\r\n');
  assert.equal(await statusOf(`GET /ws/echo HTTP/1.1\r\nHost: x\r\n${upgrade}\r\n${lines}\r\n\r\n`), 431, '2001 header lines on an upgrade');
  assert.equal(await statusOf(`GET /healthz HTTP/1.1\r\nHost: x\r\n${upgrade}\r\n${lines}\r\n\r\n`.replace(/Upgrade: websocket\r\nConnection: Upgrade\r\n/, 'X-A: 1\r\nX-B: 1\r\n')), 431, '2001 header lines on a plain request');
  const fewer = Array.from({ length: 1995 }, () => 'a: 1').join('\r\n');
  assert.equal(await statusOf(`GET /ws/echo HTTP/1.1\r\nHost: x\r\n${upgrade}\r\n${fewer}\r\n\r\n`), 101, '2000 header lines still upgrade');
  await stillServes();
});

test('bad frames close with the RFC 6455 code', async () => {
  const invalidUtf8 = Buffer.from([0xc3, 0x28, 0xff]);
  assert.equal(await closeCodeFor(frame(0x1, invalidUtf8)), CloseCode.INVALID_PAYLOAD, 'invalid UTF-8');
  assert.equal(await closeCodeFor(frame(0x1, 'text', { mask: false })), PROTOCOL_ERROR, 'unmasked frame');
  assert.equal(await closeCodeFor(frame(0x1, 'text', { rsv: 0b100 })), PROTOCOL_ERROR, 'RSV1 without an extension');
  assert.equal(await closeCodeFor(frame(0x1, 'text', { rsv: 0b011 })), PROTOCOL_ERROR, 'RSV2/RSV3');
  assert.equal(await closeCodeFor(frame(0x3, 'x')), PROTOCOL_ERROR, 'reserved opcode');
  assert.equal(await closeCodeFor(frame(0x0, 'x')), PROTOCOL_ERROR, 'continuation without a start');
  assert.equal(await closeCodeFor(frame(0x9, 'p'.repeat(126))), PROTOCOL_ERROR, 'control frame over 125 bytes');
  assert.equal(await closeCodeFor(frame(0x9, 'p', { fin: false })), PROTOCOL_ERROR, 'fragmented control frame');
  for (const code of [0, 999, 1004, 1005, 1006, 1015, 2999, 5000]) {
    assert.equal(await closeCodeFor(closeFrame(code)), PROTOCOL_ERROR, `close code ${code}`);
  }
  assert.equal(await closeCodeFor(frame(0x8, Buffer.from([0x03]))), PROTOCOL_ERROR, 'one-byte close payload');
  assert.equal(await closeCodeFor(Buffer.concat([frame(0x1, '', { declaredLength: 2 ** 53 - 1 }).subarray(0, 14)])), CloseCode.MESSAGE_TOO_BIG, 'huge length header');
  assert.equal(await closeCodeFor(frame(0x1, '', { declaredLength: 70_000 }).subarray(0, 14)), CloseCode.MESSAGE_TOO_BIG, 'length over --max-payload');
  const overflow = Buffer.from([0x81, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]);
  const code = await closeCodeFor(overflow);
  assert.ok(code === CloseCode.MESSAGE_TOO_BIG || code === PROTOCOL_ERROR, `64-bit length with the top bit set: ${code}`);
  await stillServes();
});

test('junk on the echo socket is echoed or refused, never fatal', async () => {
  const client = await connect(`ws://127.0.0.1:${proc.port}/ws/echo`);
  for (const junk of ['{', '{"type":', 'null', '[1,2', '\u0000\u0001', '{"__proto__":{"x":1}}', '💥'.repeat(100)]) client.send(junk);
  await client.until((m) => m.length === 7);
  client.ws.send(Buffer.from([1, 2, 3]), { binary: true });
  assert.equal(await client.waitClose(), CloseCode.UNSUPPORTED_DATA);
  // A peer that vanishes mid-frame and one that resets the connection.
  const half = await rawUpgrade(proc.port);
  half.write(frame(0x1, 'x'.repeat(1000)).subarray(0, 500));
  half.destroy();
  const reset = await rawUpgrade(proc.port);
  reset.socket.resetAndDestroy();
  await stillServes();
});
