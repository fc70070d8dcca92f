/** JWT authentication before the upgrade (401, no 101) and token expiry after it (4001). */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { exportJWK } from 'jose';
import { CloseCode } from '../../src/errors.js';
import type { FanoutNode } from '../../src/app.js';
import { closeNodes, startNode, type ConfigInput } from '../helpers/nodes.js';
import { rawConnect, handshake } from '../helpers/raw-ws.js';
import { keyPair, SECRET, sign, tempDir, unsignedToken, WhoamiEndpoint, WHOAMI_PATH } from '../helpers/security.js';
import { connect, refusedStatus } from '../helpers/ws-client.js';

const nodes: FanoutNode[] = [];
const tmp = tempDir();
after(async () => {
  await closeNodes(nodes);
  tmp.cleanup();
});

async function node(config: ConfigInput): Promise<FanoutNode> {
  const n = await startNode(config);
  n.addEndpoint(new WhoamiEndpoint(n));
  nodes.push(n);
  return n;
}

const url = (n: FanoutNode, query = '') => `ws://127.0.0.1:${n.address.port}${WHOAMI_PATH}${query}`;

async function whoami(address: string, headers: Record<string, string> = {}): Promise<Record<string, unknown>> {
  const client = await connect(address, { headers });
  try {
    return await client.json((f) => f['type'] === 'whoami');
  } finally {
    client.close();
  }
}

describe('HS256 (--jwt-secret)', () => {
  let n: FanoutNode;
  before(async () => {
    n = await node({ jwtSecret: SECRET });
  });

  test('a valid token from the header, the query or the cookie admits, with sub and channels', async () => {
    const token = await sign({ channels: ['news', 'room:*'] }, { sub: 'alice' });
    for (const [query, headers] of [
      ['', { authorization: `Bearer ${token}` }],
      [`?token=${token}`, {}],
      ['', { cookie: `theme=dark; fanout_token=${token}` }],
    ] as const) {
      const me = await whoami(url(n, query), headers);
      assert.equal(me['user'], 'alice');
      assert.deepEqual(me['channels'], ['news', 'room:*']);
      assert.equal(typeof me['expiresAt'], 'number');
    }
  });

  test('missing, malformed, forged, expired, wrong-algorithm, alg none and sub-less tokens get 401 before the upgrade', async () => {
    const forged = await sign({}, { key: new TextEncoder().encode('another-secret-another-secret-xx') });
    const expired = await sign({}, { exp: -10 });
    const hs512 = await sign({}, { alg: 'HS512' });
    const noSub = await sign({}, { sub: null });
    const badChannels = await sign({ channels: { a: 1 } });
    const cases: Array<[string, string, Record<string, string>]> = [
      ['missing', '', {}],
      ['malformed', '?token=not-a-jwt', {}],
      ['malformed header', '', { authorization: 'Basic dXNlcjpwYXNz' }],
      ['forged', `?token=${forged}`, {}],
      ['expired', `?token=${expired}`, {}],
      ['wrong algorithm', `?token=${hs512}`, {}],
      ['alg none', `?token=${unsignedToken({})}`, {}],
      ['no sub', `?token=${noSub}`, {}],
      ['bad channels claim', `?token=${badChannels}`, {}],
      ['tampered payload', `?token=${tamper(await sign({ channels: ['a'] }))}`, {}],
    ];
    for (const [name, query, headers] of cases) {
      assert.equal(await refusedStatus(url(n, query), { headers }), 401, name);
    }
    assert.equal(n.clientCount, 0);
  });

  test('the 401 comes as a plain HTTP answer with WWW-Authenticate, never a 101', async () => {
    const peer = await rawConnect(n.address.port);
    peer.write(handshake(WHOAMI_PATH));
    await peer.until(() => peer.response !== undefined);
    assert.equal(peer.response!.status, 401);
    assert.match(peer.response!.headers, /WWW-Authenticate: Bearer/i);
    await peer.closed();
  });

  test('a connection whose token expires is closed with 4001', async () => {
    const token = await sign({}, { exp: 2 });
    const client = await connect(url(n, `?token=${token}`));
    try {
      await client.json((f) => f['type'] === 'whoami');
      assert.equal(await client.waitClose(8000), CloseCode.TOKEN_EXPIRED);
      assert.equal(client.closeReason, 'token expired');
    } finally {
      client.close();
    }
  });
});

test('--jwt-issuer and --jwt-audience are enforced', async () => {
  const n = await node({ jwtSecret: SECRET, jwtIssuer: 'https://auth.example', jwtAudience: 'fanout' });
  const good = await sign({}, { iss: 'https://auth.example', aud: 'fanout' });
  assert.equal((await whoami(url(n, `?token=${good}`)))['user'], 'alice');
  assert.equal(await refusedStatus(url(n, `?token=${await sign({}, { iss: 'https://evil.example', aud: 'fanout' })}`)), 401);
  assert.equal(await refusedStatus(url(n, `?token=${await sign({}, { iss: 'https://auth.example', aud: 'other' })}`)), 401);
  assert.equal(await refusedStatus(url(n, `?token=${await sign({})}`)), 401, 'no iss/aud');
});

test('--jwt-public-key: RS256 and ES256 by key type; the public key used as an HMAC secret is refused', async () => {
  for (const kind of ['rsa', 'ec'] as const) {
    const { privateKey, publicPem } = keyPair(kind);
    const alg = kind === 'rsa' ? 'RS256' : 'ES256';
    const n = await node({ jwtPublicKey: tmp.file(`${kind}.pem`, publicPem) });
    const token = await sign({ channels: 'a,b' }, { key: privateKey, alg, sub: `user-${kind}` });
    const me = await whoami(url(n, `?token=${token}`));
    assert.equal(me['user'], `user-${kind}`);
    assert.deepEqual(me['channels'], ['a', 'b'], 'a comma-separated channels claim is split');
    // The classic algorithm-confusion attack: HS256 signed with the public key's bytes.
    const confused = await sign({}, { key: new TextEncoder().encode(publicPem) });
    assert.equal(await refusedStatus(url(n, `?token=${confused}`)), 401, `${alg}: HS256 with the public key`);
    const other = keyPair(kind);
    assert.equal(await refusedStatus(url(n, `?token=${await sign({}, { key: other.privateKey, alg })}`)), 401, `${alg}: another key`);
  }
});

describe('--jwks-url', () => {
  let jwks: Server;
  let fetches = 0;
  let jwksUrl = '';
  const rsa = keyPair('rsa');
  const ec = keyPair('ec');
  before(async () => {
    const keys = [
      { ...(await exportJWK(rsa.publicKey)), kid: 'rsa-1', alg: 'RS256', use: 'sig' },
      { ...(await exportJWK(ec.publicKey)), kid: 'ec-1', alg: 'ES256', use: 'sig' },
    ];
    jwks = createServer((_req, res) => {
      fetches++;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ keys }));
    });
    await new Promise<void>((resolve) => jwks.listen(0, '127.0.0.1', resolve));
    jwksUrl = `http://127.0.0.1:${(jwks.address() as AddressInfo).port}/.well-known/jwks.json`;
  });
  after(() => new Promise<void>((resolve) => jwks.close(() => resolve())));

  test('keys are looked up by kid, checked against the issuer, and the key set is cached', async () => {
    const n = await node({ jwksUrl, jwtIssuer: 'https://idp.example' });
    const byRsa = await sign({}, { key: rsa.privateKey, alg: 'RS256', kid: 'rsa-1', sub: 'r', iss: 'https://idp.example' });
    const byEc = await sign({}, { key: ec.privateKey, alg: 'ES256', kid: 'ec-1', sub: 'e', iss: 'https://idp.example' });
    assert.equal((await whoami(url(n, `?token=${byRsa}`)))['user'], 'r');
    assert.equal((await whoami(url(n, `?token=${byEc}`)))['user'], 'e');
    for (let i = 0; i < 5; i++) await whoami(url(n, `?token=${byRsa}`));
    assert.equal(fetches, 1, 'one JWKS fetch for seven handshakes');
    const wrongKid = await sign({}, { key: ec.privateKey, alg: 'ES256', kid: 'rsa-1', iss: 'https://idp.example' });
    assert.equal(await refusedStatus(url(n, `?token=${wrongKid}`)), 401, 'signature does not match the kid\'s key');
    const unknownKid = await sign({}, { key: rsa.privateKey, alg: 'RS256', kid: 'nope', iss: 'https://idp.example' });
    assert.equal(await refusedStatus(url(n, `?token=${unknownKid}`)), 401);
    const wrongIssuer = await sign({}, { key: rsa.privateKey, alg: 'RS256', kid: 'rsa-1', iss: 'https://evil.example' });
    assert.equal(await refusedStatus(url(n, `?token=${wrongIssuer}`)), 401);
    assert.equal(await refusedStatus(url(n, `?token=${await sign({})}`)), 401, 'an HS256 token');
  });

  test('an unreachable key set answers 503 (retry), not 401', async () => {
    const n = await node({ jwksUrl: 'http://127.0.0.1:9/jwks.json' });
    const token = await sign({}, { key: rsa.privateKey, alg: 'RS256', kid: 'rsa-1' });
    assert.equal(await refusedStatus(url(n, `?token=${token}`)), 503);
  });
});

/** Changes the payload of a signed token (the signature no longer matches). */
function tamper(token: string): string {
  const [h, p, s] = token.split('.');
  const claims = JSON.parse(Buffer.from(p!, 'base64url').toString()) as Record<string, unknown>;
  claims['channels'] = ['*'];
  return `${h}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${s}`;
}
