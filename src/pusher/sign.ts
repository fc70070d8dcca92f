/**
 * Pusher's signatures, all HMAC-SHA256 with the app secret in hex, all compared in constant time:
 * - channel auth: `key:HMAC("socket_id:channel")`, or `"socket_id:channel:channel_data"` for presence;
 * - user sign-in: `key:HMAC("socket_id::user::user_data")`;
 * - the HTTP API: `HMAC("METHOD\nPATH\nsorted query")` over every parameter but `auth_signature`;
 * - webhooks: `HMAC(body)` in X-Pusher-Signature.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

/** One Pusher app: what `--pusher-app-id`, `--pusher-key` and `--pusher-secret` give. */
export interface PusherApp {
  readonly id: string;
  readonly key: string;
  readonly secret: string;
}

export function hmac(secret: string, text: string): string {
  return createHmac('sha256', secret).update(text).digest('hex');
}

/** Equal strings, compared in time that does not depend on where they differ. */
export function sameText(a: string, b: string): boolean {
  const x = createHash('sha256').update(a).digest();
  const y = createHash('sha256').update(b).digest();
  return timingSafeEqual(x, y) && a === b;
}

/** True when `auth` is `key:signature` of `text` for this app. */
export function validAuth(app: PusherApp, auth: string | undefined, text: string): boolean {
  if (auth === undefined) return false;
  return sameText(auth, `${app.key}:${hmac(app.secret, text)}`);
}

/** The user of a `pusher:signin`: its `user_data`'s `id` when the signature over `socket_id::user::user_data` holds. */
export function signedInUser(app: PusherApp, socketId: string, auth: string, userData: string): { readonly id: string } | 'bad_signature' | 'no_id' {
  if (!validAuth(app, auth, `${socketId}::user::${userData}`)) return 'bad_signature';
  try {
    const id = (JSON.parse(userData) as { id?: unknown }).id;
    return typeof id === 'string' && id !== '' ? { id } : 'no_id';
  } catch {
    return 'no_id';
  }
}

/** Pusher's limit on the age of a signed HTTP request, in seconds either way. */
export const AUTH_TIMESTAMP_WINDOW_S = 600;

export type ApiVerdict = { readonly ok: true } | { readonly ok: false; readonly message: string };

/**
 * Checks a signed HTTP API request: `query` is its parameters as sent, `body` its raw body (empty
 * for GET). Every failure is a 401 with a sentence saying which part is wrong.
 */
export function checkApiSignature(app: PusherApp, method: string, path: string, query: URLSearchParams, body: Buffer, now = Date.now()): ApiVerdict {
  const key = query.get('auth_key');
  const timestamp = query.get('auth_timestamp');
  const version = query.get('auth_version');
  const signature = query.get('auth_signature');
  if (key === null || timestamp === null || version === null || signature === null) {
    return { ok: false, message: 'missing auth_key, auth_timestamp, auth_version or auth_signature' };
  }
  if (!sameText(key, app.key)) return { ok: false, message: 'unknown auth_key' };
  if (version !== '1.0') return { ok: false, message: 'auth_version must be 1.0' };
  const seconds = Number(timestamp);
  if (!/^\d+$/.test(timestamp) || Math.abs(now / 1000 - seconds) > AUTH_TIMESTAMP_WINDOW_S) {
    return { ok: false, message: `Timestamp expired: auth_timestamp must be within ${AUTH_TIMESTAMP_WINDOW_S} s of the server's time (${Math.floor(now / 1000)})` };
  }
  if (body.length > 0) {
    const md5 = createHash('md5').update(body).digest('hex');
    const given = query.get('body_md5');
    if (given === null || !sameText(given, md5)) return { ok: false, message: 'body_md5 does not match the body' };
  }
  const params = [...query.entries()].filter(([k]) => k !== 'auth_signature').map(([k, v]) => [k.toLowerCase(), v] as const);
  params.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const sorted = params.map(([k, v]) => `${k}=${v}`).join('&');
  const expected = hmac(app.secret, `${method}\n${path}\n${sorted}`);
  if (!sameText(signature, expected)) return { ok: false, message: 'Invalid signature: you should have sent HmacSHA256Hex(' + JSON.stringify(`${method}\n${path}\n${sorted}`) + ', your_secret_key)' };
  return { ok: true };
}
