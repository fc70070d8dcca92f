/**
 * The bench's Pusher lane, client side: what a `pusher-js` 8 client sends and waits for on
 * `WS /app/{key}` (docs/pusher.md), as the raw load-generator client (ws-raw.ts) speaks it.
 *
 * Copied from pusher-js 8.6.0 (dist/node/pusher.js): the URL is `getGenericPath` with its
 * `flash=false`; a client frame is `send_event(name, data)`, i.e. `{"event":…,"data":{…}}` with
 * `data` an object (the server's frames carry `data` as a string); a public channel's subscribe
 * carries `auth: ''` (its authorizer answers nothing) and no `channel_data`; a `pusher:ping` from
 * the server is answered `pusher:pong` with `{}`. pusher-js also pings after 120 s without a
 * frame (`activity_timeout`): a measured point is never that quiet, so the raw client does not.
 *
 * It runs in every load-generator lane, beside ws-raw.ts, which frames these: it imports only the
 * protocol's wire module (no Node API, no state).
 */
import { PUSHER_PING } from '../src/protocol/pusher.js';

/** The pusher-js release whose frames these are (its `version=` query parameter). */
export const PUSHER_JS_VERSION = '8.6.0';

/** The path pusher-js connects to for app `key`. */
export function pusherPath(key: string): string {
  return `/app/${key}?protocol=7&client=js&version=${PUSHER_JS_VERSION}&flash=false`;
}

/** The text of pusher-js's subscribe to public channel `channel`. */
export function pusherSubscribe(channel: string): string {
  return JSON.stringify({ event: 'pusher:subscribe', data: { auth: '', channel } });
}

/** pusher-js's answer to a `pusher:ping`. */
export const PUSHER_JS_PONG = '{"event":"pusher:pong","data":{}}';

/** The node's `pusher:ping`, byte for byte. */
const SERVER_PING = Buffer.from(PUSHER_PING);

/** Whether the text frame at `buf[start, end)` is the server's `pusher:ping` (checked on every frame: no allocation). */
export function isPusherPing(buf: Buffer, start: number, end: number): boolean {
  return end - start === SERVER_PING.length && buf.compare(SERVER_PING, 0, SERVER_PING.length, start, end) === 0;
}

/** What a frame before the measured stream means: the socket is open, the channel is subscribed, or it was refused. */
export type PusherSetup = 'established' | 'subscribed' | 'refused' | undefined;

/** Reads a set-up frame (its first 200 characters are enough for every event name). */
export function pusherSetup(text: string): PusherSetup {
  if (text.includes('"event":"pusher:connection_established"')) return 'established';
  if (text.includes('"event":"pusher_internal:subscription_succeeded"')) return 'subscribed';
  if (text.includes('"event":"pusher:error"') || text.includes('"event":"pusher:subscription_error"')) return 'refused';
  return undefined;
}
