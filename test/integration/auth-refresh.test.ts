/**
 * Identity over a long-lived connection (docs/auth.md), on one node with real ws clients: the
 * `connected` frame's `expires`, `refresh` with a new JWT (same user; narrowed patterns drop
 * subscriptions; another user or a bad token is `unauthorized` and the old token still ends the
 * connection at its `exp`), and subscription tokens (subscribe, refresh, expiry of one channel
 * only).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { FanoutNode } from '../../src/app.js';
import { CloseCode } from '../../src/errors.js';
import { CHANNEL_PATH } from '../../src/protocol/frames.js';
import { frames, publish, request, subscribe, waitMessages, type Frame } from '../helpers/channels.js';
import { closeNodes, httpUrl, startNode, wsUrl } from '../helpers/nodes.js';
import { sign } from '../helpers/security.js';
import { closeAll, connect, type TestClient } from '../helpers/ws-client.js';

const API_KEY = 'auth-refresh-test-api-key';
const nodes: FanoutNode[] = [];
const clients: TestClient[] = [];
let node: FanoutNode;

before(async () => {
  node = await startNode({ jwtSecret: 'test-secret-that-is-long-enough-for-hs256', apiKey: API_KEY });
  nodes.push(node);
});
after(async () => {
  closeAll(clients);
  await closeNodes(nodes);
});

/** Connects with `token` and returns the client and its `connected` frame. */
async function open(token: string): Promise<{ client: TestClient; hello: Frame }> {
  const client = await connect(`${wsUrl(node, CHANNEL_PATH)}?token=${token}`);
  clients.push(client);
  const hello = await client.json<Frame>((f) => f['type'] === 'connected');
  return { client, hello };
}

function unsubscribedFrames(client: TestClient): Frame[] {
  return frames(client).filter((f) => f.type === 'unsubscribed' && f['reason'] !== undefined);
}

describe('refresh over the socket', () => {
  test('connected carries the token\'s exp; a token of the same user renews it, and its patterns replace the old ones', async () => {
    const first = await sign({ channels: ['room:*', 'news'] }, { exp: 600 });
    const { client, hello } = await open(first);
    const exp = JSON.parse(Buffer.from(first.split('.')[1]!, 'base64url').toString()) as { exp: number };
    assert.equal(hello['expires'], exp.exp);
    await subscribe(client, 'room:1');
    await subscribe(client, 'news');

    const next = await sign({ channels: ['room:*'] }, { exp: 1200 });
    const reply = await request(client, { type: 'refresh', token: next });
    assert.equal(reply.type, 'refreshed');
    assert.equal(reply['expires'], (JSON.parse(Buffer.from(next.split('.')[1]!, 'base64url').toString()) as { exp: number }).exp);
    // news is no longer allowed: dropped, with the reason; room:1 stays and still delivers.
    await client.until(() => unsubscribedFrames(client).length === 1, 5000, 'news dropped');
    assert.deepEqual(unsubscribedFrames(client)[0], { type: 'unsubscribed', channel: 'news', reason: 'forbidden' });
    await publish(client, 'room:1', 'still here');
    const got = await waitMessages(client, 'room:1', 1);
    assert.equal(got[0]!['data'], 'still here');
    const refused = await request(client, { type: 'publish', channel: 'news', data: 1 });
    assert.equal(refused['code'], 'forbidden');
  });

  test('another sub or a bad token is unauthorized, and the old token still closes the connection at its exp with 4001', async () => {
    const { client } = await open(await sign({ channels: ['a'] }, { exp: 2 }));
    const other = await request(client, { type: 'refresh', token: await sign({ channels: ['a'] }, { sub: 'mallory', exp: 600 }) });
    assert.equal(other.type, 'error');
    assert.equal(other['code'], 'unauthorized');
    assert.match(String(other['message']), /sub/);
    const forged = await request(client, { type: 'refresh', token: await sign({}, { key: new TextEncoder().encode('another-secret-another-secret-xx') }) });
    assert.equal(forged['code'], 'unauthorized');
    const expired = await request(client, { type: 'refresh', token: await sign({}, { exp: -5 }) });
    assert.equal(expired['code'], 'unauthorized');
    assert.equal(await client.waitClose(6000), CloseCode.TOKEN_EXPIRED);
  });

  test('a revoked token cannot refresh: unauthorized, the connection keeps its identity', async () => {
    const { client } = await open(await sign({ channels: ['a'] }, { exp: 600 }));
    const leaked = await sign({ channels: ['a', 'b'], jti: 'leaked-refresh-token' }, { exp: 600 });
    const revoke = await fetch(httpUrl(node, '/api/tokens/revoke'), {
      method: 'POST',
      headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ jti: 'leaked-refresh-token', until: Math.floor(Date.now() / 1000) + 600 }),
    });
    assert.equal(revoke.status, 200);
    const reply = await request(client, { type: 'refresh', token: leaked });
    assert.deepEqual([reply.type, reply['code']], ['error', 'unauthorized']);
    assert.match(String(reply['message']), /revoked/);
    // The old identity stands: b is still not allowed.
    assert.equal((await request(client, { type: 'subscribe', channel: 'b' }))['code'], 'forbidden');
  });

  test('a refresh before exp keeps the connection past its first exp', async () => {
    const { client } = await open(await sign({ channels: ['a'] }, { exp: 2 }));
    const control = (await open(await sign({ channels: ['a'] }, { exp: 2 }))).client;
    const reply = await request(client, { type: 'refresh', token: await sign({ channels: ['a'] }, { exp: 600 }) });
    assert.equal(reply.type, 'refreshed');
    // The control, which did not refresh, is closed at that same exp; the refreshed one is not.
    assert.equal(await control.waitClose(6000), CloseCode.TOKEN_EXPIRED);
    await subscribe(client, 'a');
    assert.equal(client.closeCode, undefined);
  });
});

describe('subscription tokens', () => {
  test('a token lets the user subscribe to a channel its patterns do not allow; when it expires only that channel is dropped', async () => {
    const { client } = await open(await sign({ channels: ['open'] }, { exp: 600 }));
    await subscribe(client, 'open');
    const plain = await request(client, { type: 'subscribe', channel: 'vip' });
    assert.equal(plain['code'], 'forbidden');
    const wrongChannel = await request(client, { type: 'subscribe', channel: 'vip', token: await sign({ channel: 'other' }, { exp: 60 }) });
    assert.equal(wrongChannel['code'], 'unauthorized');
    const wrongUser = await request(client, { type: 'subscribe', channel: 'vip', token: await sign({ channel: 'vip' }, { sub: 'bob', exp: 60 }) });
    assert.equal(wrongUser['code'], 'unauthorized');

    const token = await sign({ channel: 'vip' }, { exp: 2 });
    const ok = await request(client, { type: 'subscribe', channel: 'vip', token });
    assert.equal(ok.type, 'subscribed');
    assert.equal(typeof ok['expires'], 'number');
    await client.until(() => unsubscribedFrames(client).length === 1, 6000, 'vip expired');
    assert.deepEqual(unsubscribedFrames(client)[0], { type: 'unsubscribed', channel: 'vip', reason: 'expired' });
    // The connection and its other subscription stay.
    assert.equal(client.closeCode, undefined);
    await publish(client, 'open', 'after');
    await client.until(() => frames(client).some((f) => f.type === 'message' && f.channel === 'open' && f['data'] === 'after'));
  });

  test('a subscription token refreshed before its exp keeps its channel; one not refreshed is dropped', async () => {
    const { client } = await open(await sign({}, { exp: 600 }));
    assert.equal((await request(client, { type: 'subscribe', channel: 'kept', token: await sign({ channel: 'kept' }, { exp: 2 }) })).type, 'subscribed');
    assert.equal((await request(client, { type: 'subscribe', channel: 'lost', token: await sign({ channel: 'lost' }, { exp: 2 }) })).type, 'subscribed');
    const wrong = await request(client, { type: 'refresh', channel: 'kept', token: await sign({ channel: 'lost' }, { exp: 600 }) });
    assert.equal(wrong['code'], 'unauthorized');
    const refreshed = await request(client, { type: 'refresh', channel: 'kept', token: await sign({ channel: 'kept' }, { exp: 600 }) });
    assert.equal(refreshed.type, 'refreshed');
    assert.equal(refreshed['channel'], 'kept');
    await client.until(() => unsubscribedFrames(client).length === 1, 6000, 'lost expired');
    assert.equal(unsubscribedFrames(client)[0]!['channel'], 'lost');
    const history = await request(client, { type: 'history', channel: 'kept' });
    assert.equal(history.type, 'history');
    assert.equal(client.closeCode, undefined);
  });

  test('a refresh of a channel not held by a token is not_found', async () => {
    const { client } = await open(await sign({ channels: ['a'] }, { exp: 600 }));
    await subscribe(client, 'a');
    const reply = await request(client, { type: 'refresh', channel: 'a', token: await sign({ channel: 'a' }, { exp: 60 }) });
    assert.equal(reply['code'], 'not_found');
  });
});
