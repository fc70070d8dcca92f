/**
 * The Pusher protocol's edges without a network (docs/pusher.md): what a client sends is decoded
 * or refused with a sentence, never a throw; the HTTP API's signature check refuses every wrong
 * part (key, version, timestamp, body_md5, signature) and takes what the `pusher` library signs;
 * channel auth and signin signatures match the library's.
 */
import assert from 'node:assert/strict';
import { createHash, createHmac } from 'node:crypto';
import { test } from 'node:test';
import PusherServer from 'pusher';
import { decodePusher, isCacheChannel, isPusherChannel, pusherChannelKind } from '../../src/protocol/pusher.js';
import { checkApiSignature, signedInUser, validAuth } from '../../src/pusher/sign.js';

const APP = { id: 'a1', key: 'k1', secret: 's1' };
const lib = new PusherServer({ appId: APP.id, key: APP.key, secret: APP.secret, host: '127.0.0.1' });

test('junk from a client is refused with a sentence, never a throw', () => {
  for (const junk of ['', 'nope', '[]', '1', 'null', '{}', '{"event":1}', '{"event":"pusher:subscribe","data":"{"}', '{"event":"pusher:subscribe","data":{"channel":"a b"}}', '{"event":"pusher:subscribe","data":{"channel":""}}', `{"event":"pusher:subscribe","data":{"channel":"${'c'.repeat(201)}"}}`, '{"event":"pusher:signin","data":{}}', '{"event":"client-x"}', '{"event":"whatever"}']) {
    const decoded = decodePusher(junk);
    assert.equal(decoded.ok, false, junk);
    if (!decoded.ok) assert.ok(decoded.message.length > 0);
  }
  assert.deepEqual(decodePusher('{"event":"pusher:subscribe","data":{"channel":"private-App.Models.User.1","auth":"k:x"}}'), {
    ok: true,
    frame: { event: 'pusher:subscribe', channel: 'private-App.Models.User.1', auth: 'k:x', channelData: undefined },
  });
  // Other clients send the data of pusher: events as a JSON string.
  assert.deepEqual(decodePusher('{"event":"pusher:unsubscribe","data":"{\\"channel\\":\\"news\\"}"}'), { ok: true, frame: { event: 'pusher:unsubscribe', channel: 'news' } });
  assert.deepEqual(decodePusher('{"event":"client-typing","channel":"private-a","data":{"x":1}}'), { ok: true, frame: { event: 'client-typing', channel: 'private-a', data: { x: 1 } } });
});

test('channel names and kinds', () => {
  assert.equal(isPusherChannel('c'.repeat(200)), true);
  assert.equal(isPusherChannel('c'.repeat(201)), false);
  assert.equal(isPusherChannel('#pusher:x'), false);
  assert.equal(pusherChannelKind('private-encrypted-x'), 'encrypted');
  assert.equal(pusherChannelKind('private-cache-x'), 'private');
  assert.equal(pusherChannelKind('presence-x'), 'presence');
  assert.equal(pusherChannelKind('cache-x'), 'public');
  for (const c of ['cache-x', 'private-cache-x', 'presence-cache-x', 'private-encrypted-cache-x']) assert.equal(isCacheChannel(c), true, c);
  assert.equal(isCacheChannel('news-cache-x'), false);
});

test("channel auth and signin match the pusher library's signatures", () => {
  const auth = lib.authorizeChannel('1.2', 'private-a');
  assert.equal(validAuth(APP, auth.auth, '1.2:private-a'), true);
  assert.equal(validAuth(APP, auth.auth, '1.3:private-a'), false);
  const presence = lib.authorizeChannel('1.2', 'presence-a', { user_id: 'u' });
  assert.equal(validAuth(APP, presence.auth, `1.2:presence-a:${presence.channel_data}`), true);
  const user = lib.authenticateUser('1.2', { id: 'u7' });
  assert.deepEqual(signedInUser(APP, '1.2', user.auth, user.user_data), { id: 'u7' });
  assert.equal(signedInUser(APP, '9.9', user.auth, user.user_data), 'bad_signature');
  // The library refuses an empty id; a hand-signed one is refused here too.
  const userData = '{"name":"no id"}';
  const noId = `${APP.key}:${createHmac('sha256', APP.secret).update(`1.2::user::${userData}`).digest('hex')}`;
  assert.equal(signedInUser(APP, '1.2', noId, userData), 'no_id');
});

test('the HTTP API signature: every wrong part is refused, a right one taken', () => {
  const now = 1_800_000_000_000;
  const sign = (method: string, path: string, params: Record<string, string>, body = ''): URLSearchParams => {
    const query: Record<string, string> = { auth_key: APP.key, auth_timestamp: String(now / 1000), auth_version: '1.0', ...(body ? { body_md5: createHash('md5').update(body).digest('hex') } : {}), ...params };
    const sorted = Object.keys(query).sort().map((k) => `${k}=${query[k]}`).join('&');
    return new URLSearchParams({ ...query, auth_signature: createHmac('sha256', APP.secret).update(`${method}\n${path}\n${sorted}`).digest('hex') });
  };
  const body = '{"name":"e","data":"{}","channel":"c"}';
  const good = sign('POST', '/apps/a1/events', {}, body);
  assert.deepEqual(checkApiSignature(APP, 'POST', '/apps/a1/events', good, Buffer.from(body), now), { ok: true });
  const refused = (q: URLSearchParams, b = body, method = 'POST', path = '/apps/a1/events', at = now): string => {
    const verdict = checkApiSignature(APP, method, path, q, Buffer.from(b), at);
    assert.equal(verdict.ok, false);
    return verdict.ok ? '' : verdict.message;
  };
  assert.match(refused(good, body + ' '), /body_md5/);
  assert.match(refused(good, body, 'GET'), /Invalid signature/);
  assert.match(refused(good, body, 'POST', '/apps/a1/batch_events'), /Invalid signature/);
  assert.match(refused(good, body, 'POST', '/apps/a1/events', now + 601_000), /Timestamp expired/);
  const without = new URLSearchParams(good);
  without.delete('auth_signature');
  assert.match(refused(without), /missing/);
  const otherKey = new URLSearchParams(good);
  otherKey.set('auth_key', 'k2');
  assert.match(refused(otherKey), /auth_key/);
  const otherVersion = new URLSearchParams(good);
  otherVersion.set('auth_version', '2.0');
  assert.match(refused(otherVersion), /auth_version/);
  // A GET with query parameters: they are part of what is signed.
  const get = sign('GET', '/apps/a1/channels', { filter_by_prefix: 'presence-', info: 'user_count' });
  assert.deepEqual(checkApiSignature(APP, 'GET', '/apps/a1/channels', get, Buffer.alloc(0), now), { ok: true });
  get.set('info', 'subscription_count');
  assert.match(refused(get, '', 'GET', '/apps/a1/channels'), /Invalid signature/);
});
