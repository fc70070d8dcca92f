import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { Authorizer } from '../../src/channels/patterns.js';
import { DEFAULTS } from '../../src/config/schema.js';
import { ERROR_CODES, UPGRADE_STATUSES } from '../../src/errors.js';
import { connectAnswer, dataAnswer } from '../../src/hooks/hooks.js';
import { cleanReason, MAX_REASON_LENGTH, refusalReason } from '../../src/hooks/reason.js';
import { HttpCaller, signBody } from '../../src/outbound/http-caller.js';
import { MAX_CONNECT_CALLS_PER_ADDRESS, MAX_HOOK_CALLS_PER_ADDRESS } from '../../src/hooks/shares.js';
import { identityOf } from '../../src/transport/auth.js';

/** A server on port 0 answering with `handler`; resolves with its URL. */
async function serve(handler: (req: IncomingMessage, res: ServerResponse, body: string) => void): Promise<{ server: Server; url: URL }> {
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => handler(req, res, body));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`) };
}

function caller(overrides: Partial<ConstructorParameters<typeof HttpCaller>[0]> = {}): HttpCaller {
  return new HttpCaller({ nodeId: 'n1', timeoutMs: 2000, concurrency: 4, secret: undefined, maxAnswerBytes: 1024, ...overrides });
}

test('a call carries the JSON body, X-Fanout-Node and the signature of the exact bytes, over one kept-alive connection', async () => {
  const seen: Array<{ headers: IncomingMessage['headers']; body: string; port: number | undefined }> = [];
  const { server, url } = await serve((req, res, body) => {
    seen.push({ headers: req.headers, body, port: req.socket.remotePort });
    res.end('{"ok":true}');
  });
  const http = caller({ secret: 's3cret' });
  try {
    const body = JSON.stringify({ client: 'c1', channel: 'a:ü' });
    const first = await http.post(url, body);
    const second = await http.post(url, body);
    assert.ok(first.ok && second.ok);
    assert.equal(first.status, 200);
    assert.equal(first.body, '{"ok":true}');
    assert.equal(seen[0]!.body, body);
    assert.equal(seen[0]!.headers['content-type'], 'application/json');
    assert.equal(seen[0]!.headers['x-fanout-node'], 'n1');
    const expected = 'sha256=' + createHmac('sha256', 's3cret').update(Buffer.from(body)).digest('hex');
    assert.equal(seen[0]!.headers['x-fanout-signature'], expected);
    assert.equal(signBody('s3cret', body), expected);
    assert.equal(seen[0]!.port, seen[1]!.port, 'the second call reused the connection');
  } finally {
    http.close();
    server.close();
  }
});

test('a call without an answer in time is a timeout; past the concurrency cap a call is refused at once, not queued', async () => {
  // A back end that never answers.
  const { server, url } = await serve(() => {});
  const http = caller({ timeoutMs: 200, concurrency: 2 });
  try {
    const calls = [http.post(url, '{}'), http.post(url, '{}')];
    const third = await http.post(url, '{}');
    assert.equal(third.ok === false && third.failure, 'overloaded');
    assert.equal(third.ok === false && third.seconds, undefined, 'nothing was sent');
    for (const r of await Promise.all(calls)) assert.equal(r.ok === false && r.failure, 'timeout');
    assert.equal(http.pending, 0);
  } finally {
    http.close();
    server.closeAllConnections();
    server.close();
  }
});

test('an answer over the byte cap is too_large, a refused connection a network failure', async () => {
  const { server, url } = await serve((_req, res) => res.end('x'.repeat(5000)));
  const http = caller({ maxAnswerBytes: 1024 });
  try {
    const big = await http.post(url, '{}');
    assert.equal(big.ok === false && big.failure, 'too_large');
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    const down = await http.post(url, '{}');
    assert.equal(down.ok === false && down.failure, 'network');
  } finally {
    http.close();
  }
});

test('connect answers: user, channels, publish and meta are checked; anything else is a problem, never an admission', () => {
  assert.deepEqual(connectAnswer('{"user":"alice","channels":["chat:*"],"publish":["chat:lobby"],"meta":{"n":1}}'), {
    kind: 'admit',
    user: 'alice',
    channels: ['chat:*'],
    publish: ['chat:lobby'],
    meta: { n: 1 },
    expiresAt: undefined,
  });
  assert.deepEqual(connectAnswer('{"user":null}'), { kind: 'admit', user: undefined, channels: undefined, publish: undefined, meta: undefined, expiresAt: undefined });
  for (const bad of ['', 'ok', '[]', '{"user":5}', '{"user":""}', '{"channels":"a"}', '{"channels":[1]}', '{"channels":["bad pattern"]}', '{"publish":{}}', '{"meta":[1]}']) {
    assert.equal(typeof connectAnswer(bad), 'string', bad);
  }
  assert.equal(typeof connectAnswer(`{"meta":${'['.repeat(200)}${']'.repeat(200)}}`), 'string', 'meta nested too deep');
});

test('subscribe and publish answers: an empty body or no data changes nothing, data is taken as given (null too)', () => {
  assert.equal(dataAnswer(''), null);
  assert.equal(dataAnswer('{}'), null);
  assert.deepEqual(dataAnswer('{"data":{"a":[1]}}'), { value: { a: [1] } });
  assert.deepEqual(dataAnswer('{"data":null}'), { value: null });
  assert.equal(typeof dataAnswer('yes'), 'string');
  assert.equal(typeof dataAnswer('"x"'), 'string');
});

test('publish patterns: a `publish` list decides publishing, else `channels` covers it, as for a JWT', () => {
  const auth = new Authorizer([], []);
  const jwt = identityOf({ sub: 'u', channels: ['room:*'], publish: ['room:lobby'] });
  assert.ok(jwt.ok);
  assert.ok(auth.allowed(jwt.identity, 'subscribe', 'room:other'));
  assert.ok(auth.allowed(jwt.identity, 'publish', 'room:lobby'));
  assert.ok(!auth.allowed(jwt.identity, 'publish', 'room:other'));
  const plain = identityOf({ sub: 'u', channels: 'room:*' });
  assert.ok(plain.ok && auth.allowed(plain.identity, 'publish', 'room:other'));
  const bad = identityOf({ sub: 'u', publish: [3] });
  assert.ok(!bad.ok && bad.status === 401);
  const none = identityOf({ sub: 'u', channels: ['room:*'], publish: [] });
  assert.ok(none.ok && !auth.allowed(none.identity, 'publish', 'room:x'), 'an empty publish list allows no publishing');
});

test('the per-address caps on hook calls are the ones the error registry and docs/hooks.md state', () => {
  assert.match(ERROR_CODES.rate_limited.when, new RegExp(`\\b${MAX_HOOK_CALLS_PER_ADDRESS} back-end hook calls already in flight from the client's address`));
  assert.match(UPGRADE_STATUSES.UNAVAILABLE.when, new RegExp(`or ${MAX_CONNECT_CALLS_PER_ADDRESS} from one client address`));
  const doc = readFileSync(join(process.cwd(), 'docs', 'hooks.md'), 'utf8');
  assert.match(doc, new RegExp(`at most ${MAX_HOOK_CALLS_PER_ADDRESS} subscribe and publish calls in flight`));
  assert.match(doc, new RegExp(`at most ${MAX_CONNECT_CALLS_PER_ADDRESS} connect-hook calls in flight`));
  assert.match(doc, new RegExp(`\\| \`--hook-timeout S\` \\| ${DEFAULTS.hookTimeout} \\|`));
  assert.match(doc, new RegExp(`\\| \`--hook-concurrency N\` \\| ${DEFAULTS.hookConcurrency} \\|`));
});

test("a refusal's reason: taken from {\"reason\"} only, cleaned of control and bidi characters, cut at 200 characters", () => {
  assert.equal(refusalReason('{"reason":"you are muted"}'), 'you are muted');
  assert.equal(refusalReason('{"reason":"  two\\n lines\\r\\n\\u0007and\\u202ebidi\\u2066  "}'), 'two lines and bidi');
  assert.equal(refusalReason('{"error":"no reason"}'), undefined, 'only `reason` counts');
  assert.equal(refusalReason('{"reason":42}'), undefined);
  assert.equal(refusalReason('{"reason":"\\n\\t "}'), undefined, 'nothing left: no reason');
  assert.equal(refusalReason('not json'), undefined);
  assert.equal(refusalReason(''), undefined);
  assert.equal(refusalReason('["reason"]'), undefined);
  const long = refusalReason(JSON.stringify({ reason: '🙂'.repeat(300) }))!;
  assert.equal([...long].length, MAX_REASON_LENGTH, 'counted in characters, not UTF-16 units');
  assert.ok(long.endsWith('…'));
  assert.equal(cleanReason('x'.repeat(MAX_REASON_LENGTH)), 'x'.repeat(MAX_REASON_LENGTH), 'at the limit: kept whole');
});
