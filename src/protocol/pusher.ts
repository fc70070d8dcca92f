/**
 * The Pusher Channels protocol 7 on the wire (docs/pusher.md): its frames, as `pusher-js` 8 sends
 * and expects them, one decoder for what a client sends, the encoders for what the node sends,
 * and Pusher's own error codes (4000–4399, documented by Pusher; they are not Fanout's close
 * codes of codes.ts, whose 4001 means something else: a Pusher socket only ever gets these).
 *
 * A Pusher frame is `{"event":…,"channel":…,"data":…}` where `data` is a string holding JSON for
 * the `pusher:` and `pusher_internal:` events (pusher-js parses it) and whatever the publisher gave
 * for the others.
 *
 * Browser-safe: no imports, no Node API.
 */

/** Pusher's error codes, as its docs list them: 4000–4099 do not reconnect, 4100–4199 reconnect after a while, 4200–4299 at once. */
export const PUSHER_CODES = {
  /** No app with the key of `/app/{key}`: the socket is closed with this code. */
  APP_NOT_FOUND: 4001,
  /** The connection was closed by the server API (`POST /apps/{id}/users/{user}/terminate_connections`). */
  UNAUTHORIZED: 4009,
  /** Over capacity (the node's connection caps refuse before the upgrade; kept for the docs). */
  OVER_CAPACITY: 4100,
  /** The node is draining: reconnect at once (HAProxy picks another node). */
  RECONNECT: 4200,
  /** A client event over the per-connection rate (--pusher-client-event-rate). */
  CLIENT_EVENT_RATE_LIMIT: 4301,
} as const;

/** Pusher channel names: 1–200 of `A-Z a-z 0-9 _ - = @ , . ;` (Pusher's documented set and limit). */
const PUSHER_CHANNEL = /^[A-Za-z0-9_\-=@,.;]{1,200}$/;

export function isPusherChannel(value: unknown): value is string {
  return typeof value === 'string' && PUSHER_CHANNEL.test(value);
}

/** The channel pusher-js subscribes to after `pusher:signin`, where `POST /apps/{id}/users/{user}/events` goes. */
export const SERVER_TO_USER = '#server-to-user-';

/** A channel a client may name in a subscribe: a Pusher channel, or the signed-in user's own {@link SERVER_TO_USER} channel. */
export function isSubscribable(value: unknown): value is string {
  return isPusherChannel(value) || (typeof value === 'string' && value.startsWith(SERVER_TO_USER) && value.length <= 200 + SERVER_TO_USER.length);
}

/** The channel's kind by its prefix (`private-encrypted-` is relayed as a private channel). */
export type PusherChannelKind = 'public' | 'private' | 'presence' | 'encrypted';

export function pusherChannelKind(channel: string): PusherChannelKind {
  if (channel.startsWith('private-encrypted-')) return 'encrypted';
  if (channel.startsWith('private-')) return 'private';
  if (channel.startsWith('presence-')) return 'presence';
  return 'public';
}

/** `cache-`, `private-cache-`, `private-encrypted-cache-` and `presence-cache-` channels keep their last event. */
export function isCacheChannel(channel: string): boolean {
  return /^(private-encrypted-|private-|presence-)?cache-/.test(channel);
}

/** What a client sent, validated; `error` when it is not a Pusher frame. */
export type PusherClientFrame =
  | { readonly event: 'pusher:ping' }
  | { readonly event: 'pusher:pong' }
  | { readonly event: 'pusher:subscribe'; readonly channel: string; readonly auth?: string | undefined; readonly channelData?: string | undefined }
  | { readonly event: 'pusher:unsubscribe'; readonly channel: string }
  | { readonly event: 'pusher:signin'; readonly auth: string; readonly userData: string }
  | { readonly event: `client-${string}`; readonly channel: string; readonly data: unknown };

export type PusherDecoded = { readonly ok: true; readonly frame: PusherClientFrame } | { readonly ok: false; readonly message: string };

const bad = (message: string): PusherDecoded => ({ ok: false, message });

/** Decodes one text frame from a client; anything malformed gets a message for a `pusher:error`, never a throw. */
export function decodePusher(text: string): PusherDecoded {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return bad('not JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return bad('expected a JSON object');
  const { event, channel } = value as { event?: unknown; channel?: unknown };
  let data = (value as { data?: unknown }).data;
  if (typeof event !== 'string') return bad('missing event');
  if (event === 'pusher:ping' || event === 'pusher:pong') return { ok: true, frame: { event } };
  if (event.startsWith('client-')) {
    if (!isPusherChannel(channel)) return bad('missing or invalid channel');
    return { ok: true, frame: { event: event as `client-${string}`, channel, data } };
  }
  // pusher-js sends the data of its own events as an object; other clients as a JSON string.
  if (typeof data === 'string') {
    try {
      data = JSON.parse(data);
    } catch {
      return bad(`${event}: data is not JSON`);
    }
  }
  const d = (typeof data === 'object' && data !== null ? data : {}) as Record<string, unknown>;
  if (event === 'pusher:subscribe' || event === 'pusher:unsubscribe') {
    if (!isSubscribable(d.channel)) return bad('invalid channel name: 1–200 of A-Z a-z 0-9 _ - = @ , . ;');
    if (event === 'pusher:unsubscribe') return { ok: true, frame: { event, channel: d.channel } };
    const auth = typeof d.auth === 'string' ? d.auth : undefined;
    const channelData = typeof d.channel_data === 'string' ? d.channel_data : undefined;
    return { ok: true, frame: { event, channel: d.channel, auth, channelData } };
  }
  if (event === 'pusher:signin') {
    if (typeof d.auth !== 'string' || typeof d.user_data !== 'string') return bad('pusher:signin needs auth and user_data');
    return { ok: true, frame: { event, auth: d.auth, userData: d.user_data } };
  }
  return bad(`unknown event ${JSON.stringify(event.slice(0, 64))}`);
}

/** A frame of the node: `data` is sent as it is when a string, else as its JSON text (pusher-js parses either). */
export function encodePusher(event: string, data: unknown, channel?: string, extra?: Record<string, unknown>): string {
  const frame: Record<string, unknown> = { event };
  if (channel !== undefined) frame.channel = channel;
  frame.data = typeof data === 'string' ? data : JSON.stringify(data ?? {});
  if (extra) Object.assign(frame, extra);
  return JSON.stringify(frame);
}

export function encodePusherError(code: number | null, message: string): string {
  return encodePusher('pusher:error', { code, message });
}

/** `pusher:ping`, sent to idle sockets when --heartbeat is on; pusher-js answers `pusher:pong`. */
export const PUSHER_PING = '{"event":"pusher:ping","data":"{}"}';
export const PUSHER_PONG = '{"event":"pusher:pong","data":"{}"}';
