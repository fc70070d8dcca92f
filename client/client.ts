/**
 * The Fanout client: one WebSocket to `/ws/v1` that survives drops.
 *
 * Contract (docs/client.md):
 * - On a drop it reconnects with exponential backoff and jitter, unless the close code says not
 *   to (4000–4499, 1002, 1003, 1007, 1008, 1009; or a refused upgrade with 400/401/403/404 under Node).
 * - After every reconnect it resubscribes each channel with `since` = the last position the app
 *   saw; missed messages are replayed first, duplicates are dropped by offset, so the app sees
 *   each message once and in order — or gets an `unrecovered` event when the server could not
 *   replay the gap.
 * - A publish resolves with its offset when the server acks it and rejects with a
 *   {@link FanoutClientError} otherwise; nothing fails silently. Requests made while
 *   disconnected wait (up to `maxQueued`) and go out after the resubscriptions. A publish that
 *   was on the wire when the connection dropped rejects with `disconnected` (its outcome is
 *   unknown, so it is not resent and cannot be duplicated); history and presence reads are resent.
 */
import type { ClientFrame, Json, PresenceClient, ServerFrame } from '../src/protocol/frames.js';
import { backoffDelay, backoffOptions, type BackoffOptions } from './backoff.js';
import { CloseCode, shouldReconnect, shouldRetryUpgrade } from '../src/protocol/codes.js';
import { Emitter } from './emitter.js';
import { FanoutClientError } from './errors.js';
import { Subscription, type SubscribeOptions, type SubscriptionHandlers, type SubscriptionOwner, type HistoryPage, type HistoryResult } from './subscription.js';
import { errorText, OPEN, refusedStatus, resolveWebSocket, type WebSocketConstructor, type WebSocketLike } from './transport.js';

/** The WebSocket path of the channel protocol (mirrors CHANNEL_PATH in src/protocol/frames.ts). */
export const CHANNEL_PATH = '/ws/v1';

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
  /** The refused upgrade's HTTP status, when the WebSocket implementation reports it (Node). */
  readonly status?: number;
}

export interface ClientEvents {
  /** Every state change. */
  state: (state: ClientState, previous: ClientState) => void;
  /** The server accepted the connection (every time, reconnects included). */
  connected: (info: ConnectedInfo) => void;
  /** The connection dropped or was refused; `reconnect` says what happens next. */
  disconnected: (info: DisconnectedInfo) => void;
  /** The client stopped for good: `close()`, a terminal close code, or `maxRetries`. */
  closed: (info: { readonly code: number; readonly reason: string }) => void;
  /** Errors that belong to no request: error frames without an id, bad frames, token failures. */
  error: (error: FanoutClientError) => void;
}

type RequestKind = 'publish' | 'history' | 'presence' | 'subscribe' | 'unsubscribe';

interface Pending {
  readonly id: number;
  readonly kind: RequestKind;
  readonly frame: ClientFrame;
  readonly resolve: (frame: ServerFrame) => void;
  readonly reject: (err: FanoutClientError) => void;
  readonly timer: ReturnType<typeof setTimeout> | undefined;
  readonly subscription?: Subscription;
  sent: boolean;
}

/** Server error codes after which a subscribe is retried rather than failed. */
const RETRYABLE = new Set(['unavailable', 'rate_limited', 'internal']);

const noop = (): void => {};

export class FanoutClient extends Emitter<ClientEvents> implements SubscriptionOwner {
  private readonly url: string;
  private readonly token: ClientOptions['token'];
  private readonly WebSocketClass: WebSocketConstructor | undefined;
  private readonly backoff: BackoffOptions;
  private readonly maxRetries: number;
  private readonly connectTimeout: number;
  private readonly requestTimeout: number;
  private readonly maxQueued: number;

  private stateValue: ClientState = 'closed';
  private ws: WebSocketLike | undefined;
  /** Bumped by every connection attempt and by close(): callbacks of older attempts do nothing. */
  private generation = 0;
  private attempt = 0;
  private everConnected = false;
  /** Set by close() and terminal closes; before the first connect() requests queue instead of failing. */
  private stopped = false;
  private reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  private connectTimer: ReturnType<typeof setTimeout> | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly subscriptions = new Map<string, Subscription>();
  private readonly retryTimers = new Set<ReturnType<typeof setTimeout>>();
  private connectedInfo: ConnectedInfo | undefined;
  /** The first socket error of an attempt, as the reason of a close that gives none. */
  private lastErrorText = '';
  private firstConnect: { promise: Promise<void>; resolve: () => void; reject: (err: Error) => void } | undefined;

  constructor(options: ClientOptions) {
    super();
    if (!options || typeof options.url !== 'string' || options.url === '') throw new TypeError('url: expected a WebSocket URL such as ws://localhost:8080/ws/v1');
    this.url = endpointUrl(options.url);
    this.token = options.token;
    this.WebSocketClass = options.WebSocket;
    this.backoff = backoffOptions(options.backoff);
    this.maxRetries = positive('maxRetries', options.maxRetries ?? CLIENT_DEFAULTS.maxRetries);
    this.connectTimeout = positive('connectTimeout', options.connectTimeout ?? CLIENT_DEFAULTS.connectTimeout);
    this.requestTimeout = positive('requestTimeout', options.requestTimeout ?? CLIENT_DEFAULTS.requestTimeout);
    this.maxQueued = positive('maxQueued', options.maxQueued ?? CLIENT_DEFAULTS.maxQueued);
  }

  get state(): ClientState {
    return this.stateValue;
  }

  /** This connection's id, while connected. */
  get clientId(): string | undefined {
    return this.connectedInfo?.client;
  }

  /** The id of the node serving this connection, while connected. */
  get nodeId(): string | undefined {
    return this.connectedInfo?.node;
  }

  /** The subscription to `channel`, if there is an active one. */
  subscription(channel: string): Subscription | undefined {
    return this.subscriptions.get(channel);
  }

  /**
   * Starts connecting (and reconnecting). Resolves at the first `connected`; rejects if the client
   * is closed before. Calling it while connecting or connected returns the same promise.
   */
  connect(): Promise<void> {
    if (this.stateValue !== 'closed' && this.firstConnect) return this.firstConnect.promise;
    let resolve!: () => void;
    let reject!: (err: Error) => void;
    const promise = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    promise.catch(() => {}); // an app may fire and forget; failures also come as events
    this.firstConnect = { promise, resolve, reject };
    this.attempt = 0;
    this.everConnected = false;
    this.stopped = false;
    this.setState('connecting');
    void this.open();
    return promise;
  }

  /**
   * Closes the connection and stops reconnecting. Requests waiting for a reply reject with
   * `closed`. Subscriptions are kept: a later `connect()` resumes them with recovery.
   */
  close(): void {
    if (this.stateValue === 'closed') return;
    this.stop(CloseCode.NORMAL, 'client closed');
  }

  /**
   * Subscribes to `channel`. Messages go to `handlers.onMessage` (or `on('message')`) once each,
   * in order, across reconnects. One subscription per channel per client.
   */
  subscribe(channel: string, handlers: SubscriptionHandlers = {}, options: SubscribeOptions = {}): Subscription {
    if (typeof channel !== 'string' || channel === '') throw new TypeError('channel: expected a non-empty string');
    if (this.subscriptions.has(channel)) throw new Error(`already subscribed to "${channel}": use client.subscription(channel), or unsubscribe first`);
    const sub = new Subscription(channel, this, handlers, options);
    this.subscriptions.set(channel, sub);
    if (this.stateValue === 'connected') this.sendSubscribe(sub);
    return sub;
  }

  /** @internal Use `subscription.unsubscribe()`. */
  async unsubscribe(sub: Subscription): Promise<void> {
    if (this.subscriptions.get(sub.channel) !== sub) return;
    this.subscriptions.delete(sub.channel);
    if (sub.requestId !== undefined) this.pending.delete(sub.requestId);
    const wasConfirmed = sub.state === 'subscribed' || sub.requestId !== undefined;
    sub.markUnsubscribed(new FanoutClientError('closed', `unsubscribed from "${sub.channel}"`, { channel: sub.channel }));
    // The server only knows subscriptions of the current connection; a dropped one is gone already.
    if (this.stateValue !== 'connected' || !wasConfirmed) return;
    await this.request('unsubscribe', { type: 'unsubscribe', channel: sub.channel }, { queue: false }).catch((err: FanoutClientError) => {
      // Gone already (connection dropped, or the server never held it): what the app asked for.
      if (err.code !== 'disconnected' && err.code !== 'closed' && err.code !== 'not_found') throw err;
    });
  }

  /**
   * Publishes `data` (any JSON value) to `channel`; resolves with its offset once the server acks.
   * Rejects with a {@link FanoutClientError}: the server's code (`forbidden`, `rate_limited`, …),
   * `disconnected` (sent, then the connection dropped: the outcome is unknown), `timeout`,
   * `queue_full` or `closed`.
   */
  async publish(channel: string, data: Json): Promise<{ offset: number }> {
    if (data === undefined) throw new FanoutClientError('bad_request', 'publish: data is undefined (expected a JSON value)', { channel });
    const reply = await this.request('publish', { type: 'publish', channel, data });
    return { offset: reply.type === 'ack' ? reply.offset : NaN };
  }

  /** The latest messages of `channel`, oldest first (at most `limit`; the server's default without it). */
  async history(channel: string, page?: number | HistoryPage): Promise<HistoryResult> {
    const { limit, before } = typeof page === 'number' ? { limit: page, before: undefined } : (page ?? {});
    const frame: ClientFrame = { type: 'history', channel, ...(limit === undefined ? {} : { limit }), ...(before === undefined ? {} : { before }) };
    const reply = await this.request('history', frame);
    return reply.type === 'history' ? { epoch: reply.epoch, messages: reply.messages, more: reply.more === true } : { epoch: '', messages: [], more: false };
  }

  /** Who is subscribed to `channel` now, on every node. */
  async presence(channel: string): Promise<readonly PresenceClient[]> {
    const reply = await this.request('presence', { type: 'presence', channel });
    return reply.type === 'presence' ? reply.clients : [];
  }

  // ---------------------------------------------------------------- connection

  /** A method, not a field test, so that TypeScript does not narrow the state across listener calls. */
  private isClosed(): boolean {
    return this.stateValue === 'closed';
  }

  private setState(state: ClientState): void {
    const previous = this.stateValue;
    if (previous === state) return;
    this.stateValue = state;
    this.emit('state', state, previous);
  }

  private async open(): Promise<void> {
    const generation = ++this.generation;
    let url = this.url;
    let Ctor: WebSocketConstructor;
    try {
      if (this.token !== undefined) {
        const token = typeof this.token === 'function' ? await this.token() : this.token;
        if (generation !== this.generation) return;
        url = withToken(url, token);
      }
      Ctor = await resolveWebSocket(this.WebSocketClass);
    } catch (err) {
      if (generation !== this.generation) return;
      this.emit('error', new FanoutClientError('token', `cannot get a token: ${(err as Error)?.message ?? String(err)}`, { cause: err }));
      this.dropped(CloseCode.ABNORMAL, 'no token');
      return;
    }
    if (generation !== this.generation) return;

    let ws: WebSocketLike;
    try {
      ws = new Ctor(url);
    } catch (err) {
      // A malformed URL: no retry can fix it.
      this.emit('error', new FanoutClientError('bad_request', `cannot open ${this.url}: ${(err as Error).message}`, { cause: err }));
      this.stop(CloseCode.ABNORMAL, (err as Error).message);
      return;
    }
    this.ws = ws;
    let status: number | undefined;
    ws.onopen = noop;
    ws.onmessage = (event) => {
      if (this.ws === ws) this.frame(event.data);
    };
    ws.onerror = (event) => {
      // The close event follows; its reason (often empty) is completed with this text.
      status ??= refusedStatus(event);
      if (this.ws === ws) this.lastErrorText = errorText(event);
    };
    ws.onclose = (event) => {
      if (this.ws !== ws) return;
      this.ws = undefined;
      this.dropped(event.code, event.reason || this.lastErrorText || '', status);
    };
    this.connectTimer = timer(this.connectTimeout, () => {
      if (this.ws !== ws) return;
      this.detach(ws);
      this.dropped(CloseCode.ABNORMAL, `no connected frame within ${this.connectTimeout} ms`);
    });
  }

  /** Forgets a socket: its late events go nowhere (listeners stay, as noops: `ws` throws on unheard errors). */
  private detach(ws: WebSocketLike): void {
    if (this.ws === ws) this.ws = undefined;
    ws.onopen = noop;
    ws.onmessage = noop;
    ws.onerror = noop;
    ws.onclose = noop;
    try {
      ws.close(CloseCode.NORMAL);
    } catch {
      /* already closing */
    }
  }

  private connected(info: ConnectedInfo): void {
    clearTimeout(this.connectTimer);
    this.connectedInfo = { client: info.client, node: info.node };
    this.attempt = 0;
    this.everConnected = true;
    this.lastErrorText = '';
    this.setState('connected');
    this.firstConnect?.resolve();
    this.emit('connected', this.connectedInfo);
    if (this.isClosed()) return; // a listener closed the client
    // Resubscribe first, so queued publishes land after the subscriptions that may echo them.
    for (const sub of this.subscriptions.values()) this.sendSubscribe(sub);
    for (const pending of [...this.pending.values()]) {
      if (!pending.sent && pending.kind !== 'subscribe') this.sendPending(pending);
    }
  }

  /** The socket closed or the attempt failed: reconnect, or stop when the code says so. */
  private dropped(code: number, reason: string, status?: number): void {
    clearTimeout(this.connectTimer);
    if (this.stateValue === 'closed') return;
    this.connectedInfo = undefined;
    for (const pending of [...this.pending.values()]) {
      if (pending.kind === 'subscribe') {
        this.settle(pending); // the resubscription sends a fresh one
      } else if (!pending.sent) {
        continue;
      } else if (pending.kind === 'history' || pending.kind === 'presence') {
        pending.sent = false; // reads are safe to resend
      } else {
        this.settle(pending, new FanoutClientError('disconnected', `connection lost before the ${pending.kind} was acknowledged${pending.kind === 'publish' ? '; it may or may not have been published' : ''}`, { sent: true }));
      }
    }
    for (const sub of this.subscriptions.values()) sub.handleDisconnect();
    // Subscribe retries belong to the dead connection; the next `connected` resubscribes everything.
    for (const timer of this.retryTimers) clearTimeout(timer);
    this.retryTimers.clear();

    let reconnect = shouldReconnect(code) && (status === undefined || shouldRetryUpgrade(status));
    // An expired token is terminal unless we can fetch a fresh one.
    if (code === CloseCode.TOKEN_EXPIRED && typeof this.token === 'function') reconnect = true;
    if (this.attempt >= this.maxRetries) reconnect = false;
    const info: DisconnectedInfo = status === undefined ? { code, reason, reconnect } : { code, reason, reconnect, status };
    this.emit('disconnected', info);
    if (this.isClosed()) return; // a listener closed the client
    if (!reconnect) {
      this.stop(code, status === undefined ? reason : `upgrade refused with HTTP ${status}`);
      return;
    }
    this.setState(this.everConnected ? 'reconnecting' : 'connecting');
    const delay = backoffDelay(this.attempt++, this.backoff);
    const generation = this.generation;
    this.reconnectTimer = setTimeout(() => {
      if (generation === this.generation && this.stateValue !== 'closed') void this.open();
    }, delay);
  }

  /** Ends everything: no reconnect, every waiting request rejects with `closed`. */
  private stop(code: number, reason: string): void {
    this.generation++;
    this.stopped = true;
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.connectTimer);
    for (const timer of this.retryTimers) clearTimeout(timer);
    this.retryTimers.clear();
    if (this.ws) this.detach(this.ws);
    this.connectedInfo = undefined;
    const err = new FanoutClientError('closed', `client closed (${code}${reason ? `: ${reason}` : ''})`);
    for (const pending of [...this.pending.values()]) {
      if (pending.kind === 'subscribe') this.settle(pending);
      else this.settle(pending, new FanoutClientError('closed', err.message, { sent: pending.sent }));
    }
    for (const sub of this.subscriptions.values()) sub.handleDisconnect();
    this.setState('closed');
    this.firstConnect?.reject(err);
    this.emit('closed', { code, reason });
  }

  // ---------------------------------------------------------------- frames

  private frame(data: unknown): void {
    if (typeof data !== 'string') {
      this.emit('error', new FanoutClientError('bad_frame', 'the server sent a binary frame; the channel protocol is JSON text'));
      return;
    }
    let frame: ServerFrame;
    try {
      frame = JSON.parse(data) as ServerFrame;
    } catch {
      this.emit('error', new FanoutClientError('bad_frame', `the server sent a frame that is not JSON: ${data.slice(0, 80)}`));
      return;
    }
    if (frame === null || typeof frame !== 'object' || typeof frame.type !== 'string') {
      this.emit('error', new FanoutClientError('bad_frame', `the server sent a frame without a type: ${data.slice(0, 80)}`));
      return;
    }
    switch (frame.type) {
      case 'connected':
        this.connected(frame);
        return;
      case 'message':
        this.subscriptions.get(frame.channel)?.handleMessage(frame);
        return;
      case 'subscribed': {
        // A confirmation whose id we no longer wait for belongs to a subscription the app ended.
        const pending = frame.id === undefined ? undefined : this.pending.get(frame.id);
        if (frame.id !== undefined && !pending) return;
        const sub = pending?.subscription ?? this.subscriptions.get(frame.channel);
        if (pending) this.settle(pending);
        if (sub && this.subscriptions.get(frame.channel) === sub) sub.handleSubscribed(frame);
        return;
      }
      case 'join':
      case 'leave':
        this.subscriptions.get(frame.channel)?.handleMember(frame.type, frame);
        return;
      case 'error':
        this.errorFrame(frame.id, frame.code, frame.message, frame.channel);
        return;
      case 'ack':
      case 'history':
      case 'presence':
      case 'unsubscribed': {
        const pending = frame.id === undefined ? undefined : this.pending.get(frame.id);
        if (pending) this.settle(pending, undefined, frame);
        return;
      }
      default:
        // Frames a newer server may add are ignored, so old clients keep working.
        return;
    }
  }

  private errorFrame(id: number | undefined, code: string, message: string, channel: string | undefined): void {
    const pending = id === undefined ? undefined : this.pending.get(id);
    const err = new FanoutClientError(code as FanoutClientError['code'], message, { channel: channel ?? channelOf(pending?.frame), sent: true });
    if (!pending) {
      // Without an id, a channel's error concerns its subscription; with an unknown id (a request
      // that timed out, a subscription since ended) it goes to the client's `error` event.
      const sub = channel === undefined || id !== undefined ? undefined : this.subscriptions.get(channel);
      if (sub) sub.handleError(err);
      else this.emit('error', err);
      return;
    }
    this.settle(pending, err);
    const sub = pending.subscription;
    if (pending.kind !== 'subscribe' || !sub || this.subscriptions.get(sub.channel) !== sub) return;
    if (!RETRYABLE.has(code)) {
      this.subscriptions.delete(sub.channel);
      sub.fail(err);
      return;
    }
    sub.handleError(err);
    const timer = setTimeout(() => {
      this.retryTimers.delete(timer);
      if (this.stateValue === 'connected' && this.subscriptions.get(sub.channel) === sub && sub.requestId === undefined && sub.state === 'subscribing') {
        this.sendSubscribe(sub);
      }
    }, backoffDelay(sub.retries++, this.backoff));
    this.retryTimers.add(timer);
  }

  // ---------------------------------------------------------------- requests

  private sendSubscribe(sub: Subscription): void {
    const since = sub.sinceForNextSubscribe();
    const id = this.nextId++;
    const frame: ClientFrame = since ? { type: 'subscribe', channel: sub.channel, id, since } : { type: 'subscribe', channel: sub.channel, id };
    sub.asked = since;
    sub.requestId = id;
    // No timeout: a subscription waits as long as it takes; a drop resends it.
    const pending: Pending = { id, kind: 'subscribe', frame, resolve: noop, reject: noop, timer: undefined, subscription: sub, sent: false };
    this.pending.set(id, pending);
    this.sendPending(pending);
  }

  private request(kind: RequestKind, body: ClientFrame, { queue = true } = {}): Promise<ServerFrame> {
    return new Promise<ServerFrame>((resolve, reject) => {
      const channel = channelOf(body);
      if (this.stopped) {
        reject(new FanoutClientError('closed', `cannot ${kind}: the client is closed (call connect() first)`, { channel }));
        return;
      }
      if (this.stateValue !== 'connected') {
        if (!queue) return reject(new FanoutClientError('disconnected', `cannot ${kind} while disconnected`, { channel }));
        let queued = 0;
        for (const p of this.pending.values()) if (!p.sent) queued++;
        if (queued >= this.maxQueued) return reject(new FanoutClientError('queue_full', `${queued} requests already wait for a connection (maxQueued)`, { channel }));
      }
      const id = this.nextId++;
      const frame = { ...body, id } as ClientFrame;
      const expiry = timer(this.requestTimeout, () => {
        const pending = this.pending.get(id);
        if (!pending) return;
        const text = pending.sent ? `no reply to the ${kind} within ${this.requestTimeout} ms${kind === 'publish' ? '; it may or may not have been published' : ''}` : `the ${kind} waited ${this.requestTimeout} ms for a connection and was not sent`;
        this.settle(pending, new FanoutClientError('timeout', text, { channel, sent: pending.sent }));
      });
      const pending: Pending = { id, kind, frame, resolve, reject, timer: expiry, sent: false };
      this.pending.set(id, pending);
      if (this.stateValue === 'connected') this.sendPending(pending);
    });
  }

  private sendPending(pending: Pending): void {
    const ws = this.ws;
    if (!ws || ws.readyState !== OPEN) return;
    let text: string;
    try {
      text = JSON.stringify(pending.frame);
    } catch (err) {
      this.settle(pending, new FanoutClientError('bad_request', `cannot encode the ${pending.kind}: ${(err as Error).message}`, { channel: channelOf(pending.frame), cause: err }));
      return;
    }
    try {
      ws.send(text);
      pending.sent = true;
    } catch {
      // The socket is closing; its close event resends or rejects this request.
    }
  }

  /** Resolves (with `frame`) or rejects (with `err`) a request, once. */
  private settle(pending: Pending, err?: FanoutClientError, frame?: ServerFrame): void {
    if (this.pending.get(pending.id) !== pending) return;
    this.pending.delete(pending.id);
    clearTimeout(pending.timer);
    if (err) pending.reject(err);
    else if (frame) pending.resolve(frame);
  }
}

/** setTimeout, except that 0 and Infinity (and anything past setTimeout's 2^31 ms range) mean "never". */
function timer(ms: number, fn: () => void): ReturnType<typeof setTimeout> | undefined {
  return ms > 0 && ms < 2 ** 31 ? setTimeout(fn, ms) : undefined;
}

function channelOf(frame: ClientFrame | undefined): string | undefined {
  return frame && 'channel' in frame ? frame.channel : undefined;
}

function positive(name: string, value: number): number {
  if (typeof value !== 'number' || Number.isNaN(value) || value < 0) throw new TypeError(`${name}: expected a number ≥ 0, got ${String(value)}`);
  return value;
}

/** The endpoint's ws(s) URL: http(s) becomes ws(s), a bare host gets /ws/v1, a path is resolved against the page. */
export function endpointUrl(given: string): string {
  const base = (globalThis as { location?: { href?: string } }).location?.href;
  const url = base ? new URL(given, base) : new URL(given);
  if (url.protocol === 'http:') url.protocol = 'ws:';
  else if (url.protocol === 'https:') url.protocol = 'wss:';
  if (url.protocol !== 'ws:' && url.protocol !== 'wss:') throw new TypeError(`url: expected ws://, wss://, http:// or https://, got ${given}`);
  if (url.pathname === '' || url.pathname === '/') url.pathname = CHANNEL_PATH;
  return url.toString();
}

function withToken(url: string, token: string): string {
  const u = new URL(url);
  u.searchParams.set('token', token);
  return u.toString();
}

/** Creates a client and starts connecting. */
export function connect(options: ClientOptions): FanoutClient {
  const client = new FanoutClient(options);
  void client.connect();
  return client;
}
