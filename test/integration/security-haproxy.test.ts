/**
 * The security controls through a real HAProxy from our generated config, in front of a real
 * `fanout serve` process with --trust-proxy 127.0.0.1 (per-IP limits use X-Forwarded-For).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { CloseCode } from '../../src/errors.js';
import { forkFanoutServe, type ServerProcess } from '../../harness/fanout-process.js';
import { type RunningHaproxy, startHaproxy } from '../../harness/haproxy.js';
import { until } from '../../harness/wait.js';
import { frame, rawConnect, rawUpgrade } from '../helpers/raw-ws.js';
import { SECRET, sign, unsignedToken } from '../helpers/security.js';
import { closeAll, connect, refusedStatus, type TestClient } from '../helpers/ws-client.js';

let proc: ServerProcess;
let proxy: RunningHaproxy;
let base = '';
let origin = '';

before(async () => {
  proc = await forkFanoutServe([
    '--log-level', 'info',
    '--jwt-secret', SECRET,
    '--trust-proxy', '127.0.0.1',
    '--max-connections-per-ip', '2',
    '--max-payload', '4096',
    '--rate-limit', '5',
  ]);
  proxy = await startHaproxy([proc.port]);
  base = `ws://127.0.0.1:${proxy.port}`;
  origin = `http://127.0.0.1:${proxy.port}`;
});
after(async () => {
  await proxy?.stop();
  await proc?.stop();
});

const token = () => sign({ channels: ['news'] }, { sub: 'bob' });

test('through HAProxy: same-origin (the Host HAProxy passes on) admits; a foreign origin gets 403', async () => {
  const t = await token();
  const client = await connect(`${base}/ws/echo?token=${t}`, { origin });
  client.close();
  for (const foreign of ['http://evil.example', `${origin}.evil.example`]) {
    assert.equal(await refusedStatus(`${base}/ws/echo?token=${t}`, { origin: foreign }), 403, foreign);
  }
});

test('through HAProxy: missing, expired and alg-none tokens get 401; header and cookie tokens pass', async () => {
  assert.equal(await refusedStatus(`${base}/ws/echo`), 401);
  assert.equal(await refusedStatus(`${base}/ws/echo?token=${await sign({}, { exp: -5 })}`), 401);
  assert.equal(await refusedStatus(`${base}/ws/echo?token=${unsignedToken({})}`), 401);
  const t = await token();
  for (const headers of [{ authorization: `Bearer ${t}` }, { cookie: `fanout_token=${t}` }] as Array<Record<string, string>>) {
    const c = await connect(`${base}/ws/echo`, { headers });
    c.close();
  }
});

test('through HAProxy with --trust-proxy: per-IP limits follow X-Forwarded-For, and a spoofed header does not help', async () => {
  const t = await token();
  const url = `${base}/ws/echo?token=${t}`;
  const clients: TestClient[] = [];
  try {
    clients.push(await connect(url, { localAddress: '127.0.0.2' }), await connect(url, { localAddress: '127.0.0.2' }));
    assert.equal(await refusedStatus(url, { localAddress: '127.0.0.2' }), 429);
    assert.equal(await refusedStatus(url, { localAddress: '127.0.0.2', headers: { 'x-forwarded-for': '10.1.2.3' } }), 429, 'spoofed X-Forwarded-For');
    clients.push(await connect(url, { localAddress: '127.0.0.3' })); // another address has its own count
  } finally {
    closeAll(clients);
  }
  await until(() => /"ip":"127\.0\.0\.2".*"status":429/.test(proc.output()), { timeoutMs: 5000, what: 'the 429 logged with the client address' });
});

test('through HAProxy: --max-payload closes 1009, --rate-limit closes 1008, bad frames close 1002/1007', async () => {
  const t = await token();
  const big = await connect(`${base}/ws/echo?token=${t}`);
  big.send('x'.repeat(4097));
  assert.equal(await big.waitClose(), CloseCode.MESSAGE_TOO_BIG);
  const fast = await connect(`${base}/ws/echo?token=${t}`);
  for (let i = 0; i < 30; i++) fast.send(`m${i}`);
  assert.equal(await fast.waitClose(), CloseCode.POLICY_VIOLATION);
  for (const [bytes, code] of [
    [frame(0x1, Buffer.from([0xff, 0xfe])), CloseCode.INVALID_PAYLOAD],
    [frame(0x1, 'x', { mask: false }), 1002],
    [frame(0x1, 'x', { rsv: 0b010 }), 1002],
  ] as const) {
    const peer = await rawUpgrade(proxy.port, { path: `/ws/echo?token=${t}` });
    peer.write(bytes);
    assert.equal(await peer.closed(), code);
    peer.destroy();
  }
});

test('through HAProxy: 2000+ headers are refused by HAProxy itself (400) and the node never sees them', async () => {
  const peer = await rawConnect(proxy.port);
  const many = Array.from({ length: 2500 }, (_, i) => `X-H${i}: ${i}`).join('\r\n');
  peer.write(`GET /ws/echo HTTP/1.1\r\nHost: x\r\n${many}\r\n\r\n`);
  await peer.until(() => peer.response !== undefined || peer.ended, 5000, 'an answer');
  peer.destroy();
  assert.equal(peer.response?.status, 400);
  const health = await fetch(`http://127.0.0.1:${proxy.port}/healthz`);
  assert.equal(health.status, 200);
  await health.arrayBuffer();
});

test('logs: connects, closes and refusals carry ip, origin and user; never a token or a message body', async () => {
  const t = await token();
  const c = await connect(`${base}/ws/echo?token=${t}`, { origin, localAddress: '127.0.0.4' });
  c.send('top-secret-body');
  await c.until((m) => m.includes('Received: top-secret-body'));
  c.ws.close(1000);
  await c.waitClose();
  const forged = `${t.slice(0, -4)}AAAA`;
  assert.equal(await refusedStatus(`${base}/ws/echo?token=${forged}`, { origin, localAddress: '127.0.0.4' }), 401);
  await until(() => /"reason":"bad token signature"/.test(proc.output()), { timeoutMs: 5000, what: 'the refusal in the log' });
  const lines = proc
    .output()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  const connected = lines.find((l) => l['msg'] === 'connected' && l['ip'] === '127.0.0.4');
  assert.ok(connected, 'connect logged');
  assert.equal(connected['user'], 'bob');
  assert.equal(connected['origin'], origin);
  assert.ok(lines.some((l) => l['msg'] === 'closed' && l['ip'] === '127.0.0.4' && l['user'] === 'bob' && l['code'] === 1000));
  const refused = lines.find((l) => l['msg'] === 'upgrade refused' && l['status'] === 401 && l['ip'] === '127.0.0.4');
  assert.ok(refused, 'auth failure logged');
  assert.equal(refused['origin'], origin);
  const all = proc.output();
  assert.equal(all.includes(t), false, 'a token in the log');
  assert.equal(all.includes(forged), false, 'a forged token in the log');
  assert.equal(all.includes(t.split('.')[2]!), false, 'a signature in the log');
  assert.equal(all.includes('top-secret-body'), false, 'a message body in the log');
});
