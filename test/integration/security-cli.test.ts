/** `fanout token`, the security flags' start-up errors, and `haproxy-config --tls-cert`. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { jwtVerify } from 'jose';
import { forkFanoutServe, runFanout } from '../../harness/fanout-process.js';
import { SECRET, selfSignedCert, tempDir } from '../helpers/security.js';
import { connect, refusedStatus } from '../helpers/ws-client.js';


test('fanout token prints a signed token on its last line that a node with --jwt-secret accepts', async () => {
  const { code, stdout } = await runFanout(['token', '--secret', SECRET, '--sub', 'carol', '--channels', 'a,b:*', '--ttl', '120']);
  assert.equal(code, 0);
  const token = stdout.trim().split('\n').at(-1)!;
  const { payload, protectedHeader } = await jwtVerify(token, new TextEncoder().encode(SECRET));
  assert.equal(protectedHeader.alg, 'HS256');
  assert.equal(payload.sub, 'carol');
  assert.deepEqual(payload['channels'], ['a', 'b:*']);
  assert.ok(payload.exp! - payload.iat! === 120);

  const node = await forkFanoutServe(['--jwt-secret', SECRET]);
  try {
    const client = await connect(`ws://127.0.0.1:${node.port}/ws/echo?token=${token}`);
    client.close();
    const other = (await runFanout(['token', '--secret', 'not-the-secret', '--sub', 'carol'])).stdout.trim().split('\n').at(-1)!;
    assert.equal(await refusedStatus(`ws://127.0.0.1:${node.port}/ws/echo?token=${other}`), 401);
  } finally {
    await node.stop();
  }
});

test('security flags: invalid values stop at start with one line naming the flag', async () => {
  const tmp = tempDir();
  try {
    const pem = tmp.file('not-a-key.pem', 'hello');
    for (const [args, flag] of [
      [['token', '--sub', 'x'], '--secret'],
      [['token', '--secret', 's'], '--sub'],
      [['token', '--secret', 's', '--sub', 'x', '--ttl', '0'], '--ttl'],
      [['serve', '--port', '0', '--allowed-origins', 'good.example'], '--allowed-origins'],
      [['serve', '--port', '0', '--allowed-origins', '*,http://a.example'], '--allowed-origins'],
      [['serve', '--port', '0', '--jwt-public-key', pem], '--jwt-public-key'],
      [['serve', '--port', '0', '--jwt-secret', 's', '--jwks-url', 'http://x/jwks'], '--jwt-secret'],
      [['serve', '--port', '0', '--jwks-url', 'not a url'], '--jwks-url'],
      [['serve', '--port', '0', '--rate-limit', '-1'], '--rate-limit'],
      [['haproxy-config', '--servers', 'a:1', '--tls-cert', '/nonexistent.pem'], '--tls-cert'],
      [['haproxy-config', '--servers', 'a:1', '--redirect-port', '8081'], '--redirect-port'],
    ] as Array<[string[], string]>) {
      const { code, stderr } = await runFanout(args);
      assert.equal(code, 2, `${args.join(' ')}: ${stderr}`);
      assert.equal(stderr.trim().split('\n').length, 1, stderr);
      assert.ok(stderr.startsWith(`fanout: invalid ${flag}`), `${args.join(' ')}: ${stderr}`);
    }
  } finally {
    tmp.cleanup();
  }
});

test('haproxy-config --tls-cert: ssl bind, redirect, HSTS, X-Forwarded-Proto; nodes stay on plain HTTP', async () => {
  const tmp = tempDir();
  try {
    const { combined } = selfSignedCert(tmp.dir);
    const { code, stdout } = await runFanout(['haproxy-config', '--servers', '127.0.0.1:3001', '--port', '443', '--tls-cert', combined, '--redirect-port', '80']);
    assert.equal(code, 0);
    assert.match(stdout, new RegExp(`bind 0\\.0\\.0\\.0:443 ssl crt ${combined.replace(/[.]/g, '\\.')} alpn http/1\\.1`));
    assert.match(stdout, /bind 0\.0\.0\.0:80\n/);
    assert.match(stdout, /http-request redirect location https:\/\/%\[req\.hdr\(host\),field\(1,:\)\]%\[pathq\] code 301 unless \{ ssl_fc \}/);
    assert.match(stdout, /Strict-Transport-Security "max-age=31536000" if \{ ssl_fc \}/);
    assert.match(stdout, /X-Forwarded-Proto https/);
    assert.match(stdout, /server node1 127\.0\.0\.1:3001 check/);
    assert.doesNotMatch(stdout, /server .* ssl/);
  } finally {
    tmp.cleanup();
  }
});
