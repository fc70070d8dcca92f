/** TLS: a node serving https/wss itself, and HAProxy terminating TLS in front of plain-HTTP nodes. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { get, type RequestOptions } from 'node:https';
import { request as httpRequest } from 'node:http';
import { after, before, test } from 'node:test';
import { forkFanoutServe, type ServerProcess } from '../../harness/fanout-process.js';
import { type RunningHaproxy, startHaproxy } from '../../harness/haproxy.js';
import { freePort } from '../../harness/ports.js';
import { rawConnect, handshake } from '../helpers/raw-ws.js';
import { selfSignedCert, tempDir } from '../helpers/security.js';
import { connect } from '../helpers/ws-client.js';

const tmp = tempDir();
let cert: { cert: string; key: string; combined: string };
let ca: Buffer;
before(() => {
  cert = selfSignedCert(tmp.dir);
  ca = readFileSync(cert.cert);
});
after(() => tmp.cleanup());

function httpsGet(port: number, path: string, options: RequestOptions = {}): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = get({ host: '127.0.0.1', port, path, ca, servername: 'localhost', ...options }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
  });
}

test('--tls-cert/--tls-key: the node serves https and wss itself, with its checks', async () => {
  const proc = await forkFanoutServe(['--tls-cert', cert.cert, '--tls-key', cert.key]);
  try {
    const health = await httpsGet(proc.port, '/healthz');
    assert.equal(health.status, 200);
    const client = await connect(`wss://127.0.0.1:${proc.port}/ws/echo`, { ca, origin: `https://127.0.0.1:${proc.port}` });
    client.send('over tls');
    await client.until((m) => m.includes('Received: over tls'));
    client.close();
    // The gate runs on TLS too.
    const peer = await rawConnect(proc.port, { tls: true });
    peer.write(handshake('/ws/echo', ['Origin: https://evil.example'], `127.0.0.1:${proc.port}`));
    await peer.until(() => peer.response !== undefined);
    assert.equal(peer.response!.status, 403);
    peer.destroy();
    // Plain HTTP on the TLS port gets a plain 400 saying so, and nothing else.
    const plain = await fetch(`http://127.0.0.1:${proc.port}/healthz`);
    assert.equal(plain.status, 400);
    assert.match(await plain.text(), /this port speaks TLS: use https:\/\/ or wss:\/\//);
  } finally {
    await proc.stop();
  }
});

test('a missing certificate file stops serve with one line naming the flag', async () => {
  await assert.rejects(forkFanoutServe(['--tls-cert', '/nonexistent/cert.pem', '--tls-key', cert.key]), /invalid --tls-cert: cannot read/);
  await assert.rejects(forkFanoutServe(['--tls-cert', cert.cert]), /--tls-cert and --tls-key go together/);
});

let proc: ServerProcess;
let proxy: RunningHaproxy;
let redirectPort = 0;

test('HAProxy terminates TLS: wss through it, HSTS on https answers, plain HTTP redirected to https', async (t) => {
  // Same-origin compares schemes: the node learns the client's https from its trusted proxy.
  proc = await forkFanoutServe(['--trust-proxy', '127.0.0.1']);
  redirectPort = await freePort();
  proxy = await startHaproxy([proc.port], { tlsCert: cert.combined, redirectPort });
  t.after(async () => {
    await proxy.stop();
    await proc.stop();
  });
  assert.match(proxy.config, /bind 127\.0\.0\.1:\d+ ssl crt \S+combined\.pem/);

  const client = await connect(`wss://127.0.0.1:${proxy.port}/ws/echo`, { ca, origin: `https://127.0.0.1:${proxy.port}` });
  client.send('tls at the edge');
  await client.until((m) => m.includes('Received: tls at the edge'));
  client.close();

  const health = await httpsGet(proxy.port, '/healthz');
  assert.equal(health.status, 200);
  assert.equal(health.headers['strict-transport-security'], 'max-age=31536000');

  const redirect = await new Promise<{ status: number; location: string | undefined }>((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port: redirectPort, path: '/ws?x=1', headers: { host: `127.0.0.1:${redirectPort}` } }, (res) => {
      res.resume();
      resolve({ status: res.statusCode ?? 0, location: res.headers.location });
    });
    req.on('error', reject);
    req.end();
  });
  assert.equal(redirect.status, 301);
  assert.equal(redirect.location, `https://127.0.0.1:${proxy.port}/ws?x=1`);
});
