/**
 * How a Pusher app's channels ride Fanout's channel layer (docs/pusher.md, "Channels inside
 * Fanout"): the app's channel `C` is the internal channel `#pusher:{appId}:C`, a name `/ws/v1`
 * cannot subscribe to (`#` is not in its channel names), so the two never meet. Events go through
 * the channel service like a `/ws/v1` publish (stored in the history store, put on the channel's
 * bus topic by the store, delivered by every node from the topic), which gives `cache-` channels
 * their last event and every bus its delivery; presence is the presence store's.
 *
 * What travels as a message's `data` (JSON): `{"e":event,"d":data,"x":socket_id to skip,"u":user_id}`;
 * presence events travel the same way as presence-kind bus messages.
 */

/** The internal channel of `channel` in app `appId`. */
export function internalChannel(appId: string, channel: string): string {
  return `#pusher:${appId}:${channel}`;
}

/** True for the internal channel of any Pusher app. */
export function isPusherInternal(internal: string): boolean {
  return internal.startsWith('#pusher:');
}

/** The app channel of an internal one of app `appId`, or undefined for any other channel. */
export function appChannel(appId: string, internal: string): string | undefined {
  const head = `#pusher:${appId}:`;
  return internal.startsWith(head) ? internal.slice(head.length) : undefined;
}

/** One event as it is stored and travels. */
export interface PusherEvent {
  /** The event name. */
  readonly e: string;
  /** Its data: a string from the HTTP API, whatever JSON a client event had. */
  readonly d: unknown;
  /** The socket_id it is not sent to (the sender of a client event, the API's `socket_id`). */
  readonly x?: string | undefined;
  /** The sender's user_id (client events on presence channels). */
  readonly u?: string | undefined;
}

/** The event a stored message or a presence bus message carries; undefined for anything else (a `/ws/v1` leave frame on a swept channel). */
export function eventOf(body: Buffer | string, stored: boolean): PusherEvent | undefined {
  try {
    const parsed = JSON.parse(typeof body === 'string' ? body : body.toString('utf8')) as { data?: unknown; e?: unknown };
    const value = (stored ? parsed.data : parsed) as { e?: unknown } | undefined;
    return value && typeof value.e === 'string' ? (value as PusherEvent) : undefined;
  } catch {
    return undefined;
  }
}
