/**
 * The client's options, states and events, and how a URL becomes the endpoint's: what an app
 * configures and listens to (client.ts runs the connection, requests.ts the request table).
 */
import { CHANNEL_PATH } from '../src/protocol/frames.js';
import type { BackoffOptions } from './backoff.js';
import type { FanoutClientError } from './errors.js';
import type { UpgradeRefusal } from './refusal.js';
import type { Subscription } from './subscription.js';
import type { WebSocketConstructor } from './transport.js';

export { CHANNEL_PATH };

export type ClientState =
  /** Opening the first connection (and retrying until one succeeds). */
  | 'connecting'
  /** The server said `connected`: requests flow. */
  | 'connected'
  /** The connection dropped; a reconnect is scheduled or under way. */
  | 'reconnecting'
  /** Not connected and not trying: before `connect()`, after `close()`, or after a terminal close code. */
  | 'closed';

export interface ClientOptions {
  /**
   * Where to connect: `ws(s)://host[:port][/path]` or `http(s)://…` (turned into ws(s)). Without a
   * path, `/ws/v1`. In a browser a path alone (`/ws/v1`) is taken relative to the page.
   */
  readonly url: string;
  /** The JWT, sent as `?token=`; a function is called before every connection attempt (to refresh it). */
  readonly token?: string | (() => string | Promise<string>);
  /** The WebSocket class; default: the global one (browsers), else the `ws` package (Node). */
  readonly WebSocket?: WebSocketConstructor;
  /**
   * The transports to use, in order of preference; default `['websocket', 'sse']`: SSE when the
   * WebSocket fails to open twice in a row or closes with 1006 before `connected`, the WebSocket
   * again after 60 s on SSE. `client.transport` says which is in use (docs/client.md, "Transports").
   */
  readonly transports?: readonly ('websocket' | 'sse')[];
  /** Reconnect delays. */
  readonly backoff?: Partial<BackoffOptions>;
  /** Connection attempts in a row before giving up (state `closed`); default: never give up. */
  readonly maxRetries?: number;
  /** ms from opening the socket to the server's `connected` frame before the attempt counts as failed; 0 is no limit. */
  readonly connectTimeout?: number;
  /** ms a request (publish, history, presence) may wait for its reply, queued time included; 0 is no limit. */
  readonly requestTimeout?: number;
  /** Requests that may wait for a connection; more reject with `queue_full`. */
  readonly maxQueued?: number;
}

/** Defaults of {@link ClientOptions}. */
export const CLIENT_DEFAULTS = Object.freeze({
  maxRetries: Infinity,
  connectTimeout: 10_000,
  requestTimeout: 10_000,
  maxQueued: 1000,
});

/** Who the server says we are, from its `connected` frame. */
export interface ConnectedInfo {
  /** This connection's id (what presence lists). */
  readonly client: string;
  /** The id of the node serving this connection. */
  readonly node: string;
}

export interface DisconnectedInfo {
  readonly code: number;
  readonly reason: string;
  /** True when the client will reconnect. */
  readonly reconnect: boolean;
  /** The refused upgrade's HTTP status: from the node's upgrade check, or from the WebSocket implementation (Node's `ws`). */
  readonly status?: number;
  /**
   * Why the node refused the upgrade, when its upgrade check answered (client/refusal.ts): the
   * status, the error code, the node's message (also in `reason`) and which control refused.
   */
  readonly refusal?: UpgradeRefusal;
}

export interface ClientEvents {
  /**
   * Every state change. `why` is there when a failed attempt or a dropped connection caused it
   * (the same info as `disconnected`: e.g. `reason` "self-signed certificate", `status` 401); an
   * attempt that fails and leaves the state as it was (`connecting` → `connecting`) emits the
   * state again with its `why`, so a listener of `state` alone sees why it is not connected.
   */
  state: (state: ClientState, previous: ClientState, why?: DisconnectedInfo) => void;
  /** The server accepted the connection (every time, reconnects included). */
  connected: (info: ConnectedInfo) => void;
  /** The connection dropped or was refused; `reconnect` says what happens next. */
  disconnected: (info: DisconnectedInfo) => void;
  /** The client stopped for good: `close()`, a terminal close code, or `maxRetries`. */
  closed: (info: { readonly code: number; readonly reason: string; readonly refusal?: UpgradeRefusal }) => void;
  /** Errors that belong to no request: error frames without an id, bad frames, token failures. */
  error: (error: FanoutClientError) => void;
  /**
   * The server subscribed this connection to a channel the app did not ask for (the back end's
   * `POST /api/users/{user}/subscribe`): listen to the subscription's messages here. It has
   * `server: true` and ends with the connection.
   */
  subscription: (subscription: Subscription) => void;
}


/** A numeric option, checked: a number ≥ 0 (Infinity allowed). */
export function positive(name: string, value: number): number {
  if (typeof value !== 'number' || Number.isNaN(value) || value < 0) throw new TypeError(`${name}: expected a number ≥ 0, got ${String(value)}`);
  return value;
}

/** The endpoint's ws(s) URL: http(s) becomes ws(s), a bare host gets /ws/v1, a path is resolved against the page. */
export function endpointUrl(given: string): string {
  const base = (globalThis as { location?: { href?: string } }).location?.href;
  let url: URL;
  try {
    url = base ? new URL(given, base) : new URL(given);
  } catch {
    throw new TypeError(`url: expected a full WebSocket URL such as ws://localhost:8080/ws/v1, got ${JSON.stringify(given)} (a path alone works only in a browser page)`);
  }
  if (url.protocol === 'http:') url.protocol = 'ws:';
  else if (url.protocol === 'https:') url.protocol = 'wss:';
  if (url.protocol !== 'ws:' && url.protocol !== 'wss:') throw new TypeError(`url: expected ws://, wss://, http:// or https://, got ${given}`);
  if (url.pathname === '' || url.pathname === '/') url.pathname = CHANNEL_PATH;
  return url.toString();
}

/** `url` with the token as its `token` query parameter. */
export function withToken(url: string, token: string): string {
  const u = new URL(url);
  u.searchParams.set('token', token);
  return u.toString();
}
