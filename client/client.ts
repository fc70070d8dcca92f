/**
 * The Fanout client: one WebSocket to `/ws/v1` that survives drops. One piece on purpose: the
 * connection state machine (open, drop, backoff, resubscribe, request queue) shares its state across
 * every method; subscriptions, requests, options and the transport live beside it in their own files.
 *
 * Contract (docs/client.md):
 * - On a drop it reconnects with exponential backoff and jitter, unless the close code says not
 *   to (4000–4499, 1002, 1003, 1007, 1008, 1009) or the upgrade was refused for good (400, 401,
 *   403, 404, …: the registry's `retry`). An attempt that fails before the socket opens asks the
 *   node's upgrade check why (client/refusal.ts): browsers learn the status that way, Node's `ws`
 *   already has it; `disconnected` and `closed` carry the answer as `refusal`.
 * - After every reconnect it resubscribes each channel with `since` = the last position the app
 *   saw; missed messages are replayed first, duplicates are dropped by offset, so the app sees
 *   each message once and in order — or gets an `unrecovered` event when the server could not
 *   replay the gap.
 * - A publish resolves with its offset when the server acks it and rejects with a
 *   {@link FanoutClientError} otherwise; nothing fails silently. Requests made while
 *   disconnected wait (up to `maxQueued`) and go out after the resubscriptions. A publish that
 *   was on the wire when the connection dropped rejects with `disconnected` (its outcome is
 *   unknown, so it is not resent and cannot be duplicated); history and presence reads are resent.
 * - Tokens are refreshed in place (client/refresh.ts, docs/auth.md): when `connected` says the
 *   identity expires and `token` is a function, it is called ahead of the expiry and the new token
 *   sent as `refresh`; only when that fails does the client reconnect (with a fresh token). A
 *   subscription with a `token` function refreshes its subscription token the same way, and
 *   subscribes again with a fresh one (and recovery) if the server drops it as expired.
 * - A connection silent for longer than the node's announced `ping` allows (client/liveness.ts)
 *   is dropped by the client itself and reconnected like any other drop.
 */
import type { ClientFrame, Json, PresenceClient, ServerFrame } from '../src/protocol/frames.js';
import { backoffDelay, backoffOptions, type BackoffOptions } from './backoff.js';
import { CloseCode, shouldReconnect, shouldRetryUpgrade } from '../src/protocol/codes.js';
import { IDEMPOTENCY_KEY_RULE, isIdempotencyKey } from '../src/protocol/decode.js';
import { Emitter } from './emitter.js';
import { SilenceWatch, silenceLimitMs } from './liveness.js';
import { channelOf, noop, RequestTable, timer, type RequestKind } from './requests.js';
import { FanoutClientError } from './errors.js';
import { Subscription, type JsonCompatible, type PublishAck, type PublishOptions, type SubscribeOptions, type SubscriptionHandlers, type SubscriptionOwner, type HistoryPage, type HistoryResult } from './subscription.js';
import { CLIENT_DEFAULTS, endpointUrl, positive, withToken, type ClientEvents, type ClientOptions, type ClientState, type ConnectedInfo, type DisconnectedInfo } from './options.js';
import { errorText, OPEN, refusedStatus, resolveWebSocket, type WebSocketConstructor, type WebSocketLike } from './transport.js';
import { askWhy, canAskWhy, type UpgradeRefusal } from './refusal.js';
import { refreshDelay } from './refresh.js';
import { TransportChoice, transportsOption, type TransportName } from './transports.js';

export { CHANNEL_PATH, CLIENT_DEFAULTS, endpointUrl } from './options.js';
export type { ClientEvents, ClientOptions, ClientState, ConnectedInfo, DisconnectedInfo } from './options.js';

/** Server error codes after which a subscribe is retried rather than failed. */
const RETRYABLE = new Set(['unavailable', 'rate_limited', 'internal']);

export class FanoutClient extends Emitter<ClientEvents> implements SubscriptionOwner {
  private readonly url: string;
  private readonly token: ClientOptions['token'];
  private readonly WebSocketClass: WebSocketConstructor | undefined;
  private readonly backoff: BackoffOptions;
  private readonly maxRetries: number;
  private readonly connectTimeout: number;
  private readonly requestTimeout: number;
  private readonly maxQueued: number;
  private readonly transports: TransportChoice;

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
  /** The refresh of the connection's token, while one is scheduled. */
  private refreshTimer: ReturnType<typeof setTimeout> | undefined;
  /** While connected to a node that announced `ping`: the watch on a silent link (client/liveness.ts). */
  private silence: SilenceWatch | undefined;
  private readonly requests: RequestTable;
  private readonly subscriptions = new Map<string, Subscription<unknown>>();
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
    this.transports = new TransportChoice(transportsOption(options.transports), () => this.retryWebSocket());
    this.requests = new RequestTable({
      requestTimeout: this.requestTimeout,
      maxQueued: this.maxQueued,
      send: (text) => {
        const ws = this.ws;
        if (!ws || ws.readyState !== OPEN) return false;
        ws.send(text);
        return true;
      },
    });
  }

  get state(): ClientState {
    return this.stateValue;
  }

  /** The transport in use (or tried next): `websocket`, or `sse` where WebSockets fail (docs/client.md, "Transports"). */
  get transport(): TransportName {
    return this.transports.current;
  }

  /** This connection's id, while connected. */
  get clientId(): string | undefined {
    return this.connectedInfo?.client;
  }

  /** The id of the node serving this connection, while connected. */
  get nodeId(): string | undefined {
    return this.connectedInfo?.node;
  }

  /** The subscription to `channel`, if there is an active one; `T` as it was subscribed with. */
  subscription<T = Json>(channel: string): Subscription<T> | undefined {
    return this.subscriptions.get(channel) as Subscription<T> | undefined;
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
   * in order, across reconnects. One subscription per channel per client. `T` types the messages'
   * data (`subscribe<ChatMessage>('chat:lobby', …)`; default `Json`): the app's word, not checked.
   */
  subscribe<T = Json>(channel: string, handlers: SubscriptionHandlers<T> & SubscribeOptions = {}, options: SubscribeOptions = {}): Subscription<T> {
    if (typeof channel !== 'string' || channel === '') throw new TypeError('channel: expected a non-empty string');
    if (this.subscriptions.has(channel)) throw new Error(`already subscribed to "${channel}": use client.subscription(channel), or unsubscribe first`);
    // `since`, `token` and `delta` may come with the handlers (`subscribe(C, { token })`, `subscribe(C, { delta: true })`) or apart.
    const since = options.since ?? handlers.since;
    const token = options.token ?? handlers.token;
    const delta = options.delta ?? handlers.delta;
    if (token !== undefined && typeof token !== 'function') throw new TypeError('token: expected a function that returns the subscription token');
    const sub = new Subscription<T>(channel, this, handlers, { ...(since ? { since } : {}), ...(token ? { token } : {}), ...(delta === true ? { delta } : {}) });
    this.subscriptions.set(channel, sub as Subscription<unknown>);
    if (this.stateValue === 'connected') this.sendSubscribe(sub as Subscription<unknown>);
    return sub;
  }

  /** @internal Use `subscription.unsubscribe()`. */
  async unsubscribe(sub: Subscription<unknown>): Promise<void> {
    if (this.subscriptions.get(sub.channel) !== sub) return;
    this.subscriptions.delete(sub.channel);
    if (sub.requestId !== undefined) this.requests.forget(sub.requestId);
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
   * Publishes `data` to `channel`: any JSON-compatible value, typed with `type` or `interface`
   * ({@link JsonCompatible}); resolves with its offset once the server acks.
   * Rejects with a {@link FanoutClientError}: the server's code (`forbidden`, `rate_limited`, …),
   * `disconnected` (sent, then the connection dropped: the outcome is unknown; never with an
   * `idempotencyKey`, whose publish is sent again after the reconnect), `timeout`, `queue_full`
   * or `closed`. With `idempotencyKey` the answer may say `duplicate` ({@link PublishOptions}).
   */
  publish<T>(channel: string, data: T & JsonCompatible<T>, options?: PublishOptions): Promise<PublishAck> {
    return this.publishData(channel, data, options);
  }

  /** @internal {@link publish} without the type check (a subscription's publish did it). */
  async publishData(channel: string, data: unknown, options?: PublishOptions): Promise<PublishAck> {
    if (data === undefined) throw new FanoutClientError('bad_request', 'publish: data is undefined (expected a JSON value)', { channel });
    const key = options?.idempotencyKey;
    if (key !== undefined && !isIdempotencyKey(key)) throw new FanoutClientError('bad_request', `publish: ${IDEMPOTENCY_KEY_RULE}`, { channel });
    const reply = await this.request('publish', { type: 'publish', channel, data: data as Json, ...(key === undefined ? {} : { idempotency_key: key }) });
    if (reply.type !== 'ack') return { offset: NaN };
    return reply.duplicate ? { offset: reply.offset, duplicate: true } : { offset: reply.offset };
  }

  /** The latest messages of `channel`, oldest first (at most `limit`; the server's default without it). `T` types their data (not checked). */
  async history<T = Json>(channel: string, page?: number | HistoryPage): Promise<HistoryResult<T>> {
    const { limit, before } = typeof page === 'number' ? { limit: page, before: undefined } : (page ?? {});
    const frame: ClientFrame = { type: 'history', channel, ...(limit === undefined ? {} : { limit }), ...(before === undefined ? {} : { before }) };
    const reply = await this.request('history', frame);
    if (reply.type !== 'history') return { epoch: '', messages: [], more: false };
    return { epoch: reply.epoch, messages: reply.messages.map((m) => ({ offset: m.offset, data: m.data as T })), more: reply.more === true };
  }

  /** Who is subscribed to `channel` now, on every node: a plain array, the app's to sort or filter. */
  async presence(channel: string): Promise<PresenceClient[]> {
    const reply = await this.request('presence', { type: 'presence', channel });
    return reply.type === 'presence' ? [...reply.clients] : [];
  }

  // ---------------------------------------------------------------- connection

  /** A method, not a field test, so that TypeScript does not narrow the state across listener calls. */
  private isClosed(): boolean {
    return this.stateValue === 'closed';
  }

  /** Emits `state` on a change, and also on an unchanged state when `why` says which failure kept it. */
  private setState(state: ClientState, why?: DisconnectedInfo): void {
    const previous = this.stateValue;
    if (previous === state && why === undefined) return;
    this.stateValue = state;
    if (why === undefined) this.emit('state', state, previous);
    else this.emit('state', state, previous, why);
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
      Ctor = this.transports.sseConstructor() ?? (await resolveWebSocket(this.WebSocketClass));
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
      this.stop(CloseCode.ABNORMAL, (err as Error).message, { code: CloseCode.ABNORMAL, reason: (err as Error).message, reconnect: false });
      return;
    }
    this.ws = ws;
    let status: number | undefined;
    let opened = false;
    ws.onopen = () => {
      opened = true;
    };
    ws.onmessage = (event) => {
      if (this.ws !== ws) return;
      this.silence?.heard();
      this.frame(event.data);
    };
    ws.onerror = (event) => {
      // The close event follows; its reason (often empty) is completed with this text.
      status ??= refusedStatus(event);
      if (this.ws === ws) this.lastErrorText = errorText(event);
    };
    ws.onclose = (event) => {
      if (this.ws !== ws) return;
      this.ws = undefined;
      const reason = event.reason || this.lastErrorText || '';
      // A WebSocket cut with 1006 before `connected` (a proxy that cuts it): the next attempt is over SSE.
      if (opened && this.stateValue !== 'connected' && this.transports.failedBeforeConnected(true, event.code)) return this.dropped(event.code, reason);
      // Never opened: the upgrade failed. Ask the node why before deciding to retry.
      if (!opened && canAskWhy() && (status === undefined || status >= 400)) void this.refused(generation, url, event.code, reason, status);
      else this.dropped(event.code, reason, status);
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

  private connected(info: ConnectedInfo & { readonly expires?: number; readonly ping?: number }): void {
    clearTimeout(this.connectTimer);
    this.watchSilence(info.ping);
    if (typeof info.expires === 'number' && typeof this.token === 'function') this.scheduleRefresh(info.expires);
    this.connectedInfo = { client: info.client, node: info.node };
    this.transports.connected();
    this.attempt = 0;
    this.everConnected = true;
    this.lastErrorText = '';
    this.setState('connected');
    this.firstConnect?.resolve();
    this.emit('connected', this.connectedInfo);
    if (this.isClosed()) return; // a listener closed the client
    // Resubscribe first, so queued publishes land after the subscriptions that may echo them.
    for (const sub of this.subscriptions.values()) this.sendSubscribe(sub);
    this.requests.sendWaiting();
  }

  /** Time on SSE is up: drop the SSE connection and reconnect over the WebSocket (recovering as after any drop). */
  private retryWebSocket(): void {
    const ws = this.ws;
    if (this.isClosed() || ws === undefined) return;
    this.detach(ws);
    this.dropped(CloseCode.GOING_AWAY, 'trying the WebSocket again');
  }

  /** A node that announces `ping` writes at least every 1.5 × ping seconds: longer silence is a dead link, dropped like any other. */
  private watchSilence(ping: number | undefined): void {
    this.silence?.stop();
    this.silence = undefined;
    const ws = this.ws;
    if (ws === undefined || typeof ping !== 'number' || !(ping > 0)) return;
    const watch = new SilenceWatch(silenceLimitMs(ping), () => {
      if (this.ws !== ws || this.silence !== watch) return;
      this.detach(ws);
      this.dropped(CloseCode.ABNORMAL, `no frame from the server for ${watch.limitMs} ms`);
    });
    this.silence = watch;
  }

  /** An upgrade failed: the node's check says why (or nothing), then the attempt ends as any other. */
  private async refused(generation: number, url: string, code: number, reason: string, status: number | undefined): Promise<void> {
    clearTimeout(this.connectTimer);
    const answer = await askWhy(url, this.connectTimeout);
    if (generation !== this.generation || this.stateValue === 'closed') return;
    // The node answers over HTTP and would admit it, yet the WebSocket failed: something in between
    // refused it (a proxy that strips Upgrade). Counted towards the move to SSE, and no reason to
    // stop while SSE is there. A node that cannot be reached at all (down) counts for nothing.
    if (answer === 'admitted' && this.transports.canFallBack()) {
      this.transports.failedBeforeConnected(false, code);
      return this.dropped(code, reason);
    }
    if (answer === undefined || answer === 'admitted') return this.dropped(code, reason, status);
    this.dropped(code, answer.message, answer.status, answer);
  }

  /** The socket closed or the attempt failed: reconnect, or stop when the code says so. */
  private dropped(code: number, reason: string, status?: number, refusal?: UpgradeRefusal): void {
    clearTimeout(this.connectTimer);
    clearTimeout(this.refreshTimer);
    this.watchSilence(undefined);
    if (this.stateValue === 'closed') return;
    this.connectedInfo = undefined;
    this.requests.dropped();
    this.endServerSubscriptions();
    for (const sub of this.subscriptions.values()) sub.handleDisconnect();
    // Subscribe retries belong to the dead connection; the next `connected` resubscribes everything.
    for (const timer of this.retryTimers) clearTimeout(timer);
    this.retryTimers.clear();

    let reconnect = shouldReconnect(code) && (status === undefined || shouldRetryUpgrade(status));
    // An expired token is terminal unless we can fetch a fresh one.
    if (code === CloseCode.TOKEN_EXPIRED && typeof this.token === 'function') reconnect = true;
    if (this.attempt >= this.maxRetries) reconnect = false;
    const info: DisconnectedInfo = { code, reason, reconnect, ...(status === undefined ? {} : { status }), ...(refusal ? { refusal } : {}) };
    this.emit('disconnected', info);
    if (this.isClosed()) return; // a listener closed the client
    if (!reconnect) {
      this.stop(code, status === undefined ? reason : `upgrade refused with HTTP ${status}${refusal ? `: ${refusal.message}` : ''}`, info);
      return;
    }
    this.setState(this.everConnected ? 'reconnecting' : 'connecting', info);
    const delay = backoffDelay(this.attempt++, this.backoff);
    const generation = this.generation;
    this.reconnectTimer = setTimeout(() => {
      if (generation === this.generation && this.stateValue !== 'closed') void this.open();
    }, delay);
  }

  /** Ends everything: no reconnect, every waiting request rejects with `closed`. */
  private stop(code: number, reason: string, why?: DisconnectedInfo): void {
    this.generation++;
    this.transports.stop();
    this.stopped = true;
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.connectTimer);
    clearTimeout(this.refreshTimer);
    this.watchSilence(undefined);
    for (const timer of this.retryTimers) clearTimeout(timer);
    this.retryTimers.clear();
    if (this.ws) this.detach(this.ws);
    this.connectedInfo = undefined;
    const err = new FanoutClientError('closed', `client closed (${code}${reason ? `: ${reason}` : ''})`);
    this.requests.closeAll(err.message);
    this.endServerSubscriptions();
    for (const sub of this.subscriptions.values()) sub.handleDisconnect();
    this.setState('closed', why);
    this.firstConnect?.reject(err);
    this.emit('closed', why?.refusal ? { code, reason, refusal: why.refusal } : { code, reason });
  }

  /** Subscriptions the server made belong to their connection: they end with it. */
  private endServerSubscriptions(): void {
    for (const sub of [...this.subscriptions.values()]) if (sub.server) this.serverUnsubscribed(sub.channel, 'disconnected');
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
        this.subscriptions.get(frame.channel)?.handleMessage(frame, data);
        return;
      case 'subscribed': {
        // A confirmation whose id we no longer wait for belongs to a subscription the app ended.
        const pending = this.requests.get(frame.id);
        if (frame.id !== undefined && !pending) return;
        if (frame.server === true && frame.id === undefined && !this.subscriptions.has(frame.channel)) return this.serverSubscribed(frame);
        const sub = pending?.subscription ?? this.subscriptions.get(frame.channel);
        if (pending) this.requests.settle(pending);
        if (sub && this.subscriptions.get(frame.channel) === sub) {
          sub.handleSubscribed(frame);
          if (typeof frame.expires === 'number' && sub.tokenSource) this.scheduleSubscriptionRefresh(sub, frame.expires);
        }
        return;
      }
      case 'unsubscribed':
        // Without an id and with a reason: the server ended it; otherwise the reply to the app's own unsubscribe.
        if (frame.id === undefined && frame.reason !== undefined) return this.droppedByServer(frame.channel, frame.reason);
        this.settleReply(frame);
        return;
      case 'join':
      case 'leave':
        this.subscriptions.get(frame.channel)?.handleMember(frame.type, frame);
        return;
      case 'error':
        this.errorFrame(frame.id, frame.code, frame.message, frame.channel);
        return;
      case 'ping':
        // Its arrival is all it says (the silence watch heard it); no answer is needed.
        return;
      case 'ack':
      case 'history':
      case 'presence':
      case 'refreshed':
        this.settleReply(frame);
        return;
      default:
        // Frames a newer server may add are ignored, so old clients keep working.
        return;
    }
  }

  /** The server subscribed this connection to a channel the app did not ask for: a subscription of its own, handed to the app. */
  private serverSubscribed(frame: Extract<ServerFrame, { type: 'subscribed' }>): void {
    const sub = new Subscription(frame.channel, this) as Subscription<unknown>;
    sub.server = true;
    this.subscriptions.set(frame.channel, sub);
    this.emit('subscription', sub as Subscription);
    sub.handleSubscribed(frame);
  }

  /** The server ended a subscription (`reason`): it is gone, and the app hears why. */
  private serverUnsubscribed(channel: string, reason: string): void {
    const sub = this.subscriptions.get(channel);
    if (!sub) return;
    this.subscriptions.delete(channel);
    sub.endedByServer(new FanoutClientError('closed', `unsubscribed from "${channel}" by the server (${reason})`, { channel }), reason);
  }

  private errorFrame(id: number | undefined, code: string, message: string, channel: string | undefined): void {
    const pending = this.requests.get(id);
    const err = new FanoutClientError(code as FanoutClientError['code'], message, { channel: channel ?? channelOf(pending?.frame), sent: true });
    if (!pending) {
      // Without an id, a channel's error concerns its subscription; with an unknown id (a request
      // that timed out, a subscription since ended) it goes to the client's `error` event.
      const sub = channel === undefined || id !== undefined ? undefined : this.subscriptions.get(channel);
      if (sub) sub.handleError(err);
      else this.emit('error', err);
      return;
    }
    this.requests.settle(pending, err);
    const sub = pending.subscription;
    if (pending.kind !== 'subscribe' || !sub || this.subscriptions.get(sub.channel) !== sub) return;
    if (!RETRYABLE.has(code)) {
      this.subscriptions.delete(sub.channel);
      sub.fail(err);
      return;
    }
    sub.handleError(err);
    this.retrySubscribe(sub);
  }

  /** Subscribes `sub` again after a backoff (a retryable refusal, a token that could not be had). */
  private retrySubscribe(sub: Subscription<unknown>): void {
    const timer = setTimeout(() => {
      this.retryTimers.delete(timer);
      if (this.stateValue === 'connected' && this.subscriptions.get(sub.channel) === sub && sub.requestId === undefined && sub.state === 'subscribing') {
        this.sendSubscribe(sub);
      }
    }, backoffDelay(sub.retries++, this.backoff));
    this.retryTimers.add(timer);
  }

  private settleReply(frame: ServerFrame & { readonly id?: number }): void {
    const pending = this.requests.get(frame.id);
    if (pending) this.requests.settle(pending, undefined, frame);
  }

  /**
   * The server ended a subscription on its own: one whose subscription token expired subscribes
   * again with a fresh token (recovering what it missed); any other reason ends it (`failed`).
   */
  private droppedByServer(channel: string, reason: string): void {
    const sub = this.subscriptions.get(channel);
    if (!sub) return;
    // The back end took it away (POST /api/users/{user}/unsubscribe): it ends, and the app hears why.
    if (reason === 'server') return this.serverUnsubscribed(channel, reason);
    if (reason === 'expired' && sub.tokenSource) {
      sub.handleDisconnect();
      this.sendSubscribe(sub);
      return;
    }
    this.subscriptions.delete(channel);
    const code = reason === 'forbidden' ? 'forbidden' : 'closed';
    sub.fail(new FanoutClientError(code, `the server ended the subscription to "${channel}" (${reason})`, { channel }));
  }

  // ---------------------------------------------------------------- tokens (client/refresh.ts)

  /** Refreshes the connection's token ahead of `expires`; a refresh that fails falls back to a reconnect. */
  private scheduleRefresh(expires: number): void {
    clearTimeout(this.refreshTimer);
    const generation = this.generation;
    this.refreshTimer = setTimeout(() => void this.refreshToken(generation), refreshDelay(expires));
  }

  private async refreshToken(generation: number): Promise<void> {
    try {
      const token = await (this.token as () => string | Promise<string>)();
      if (generation !== this.generation || this.stateValue !== 'connected') return;
      const reply = await this.request('refresh', { type: 'refresh', token }, { queue: false });
      if (generation !== this.generation) return;
      if (reply.type === 'refreshed' && typeof reply.expires === 'number') this.scheduleRefresh(reply.expires);
    } catch (err) {
      if (generation !== this.generation || this.stateValue !== 'connected') return;
      const failure = err instanceof FanoutClientError ? err : new FanoutClientError('token', `cannot get a token: ${(err as Error)?.message ?? String(err)}`, { cause: err });
      this.emit('error', failure);
      // The old token still holds until its exp; a reconnect with a fresh one is the fallback.
      const ws = this.ws;
      if (!ws) return;
      this.detach(ws);
      this.dropped(CloseCode.TOKEN_EXPIRED, `token refresh failed: ${failure.message}`);
    }
  }

  /** Refreshes `sub`'s subscription token ahead of `expires`; if that fails the server drops it at expiry and it subscribes again. */
  private scheduleSubscriptionRefresh(sub: Subscription<unknown>, expires: number): void {
    sub.stopRefresh();
    const generation = this.generation;
    sub.refreshTimer = setTimeout(() => {
      sub.refreshTimer = undefined;
      void (async () => {
        try {
          const token = await sub.tokenSource!();
          if (generation !== this.generation || this.subscriptions.get(sub.channel) !== sub || sub.state !== 'subscribed') return;
          const reply = await this.request('refresh', { type: 'refresh', channel: sub.channel, token }, { queue: false });
          if (generation === this.generation && this.subscriptions.get(sub.channel) === sub && reply.type === 'refreshed' && typeof reply.expires === 'number') {
            this.scheduleSubscriptionRefresh(sub, reply.expires);
          }
        } catch (err) {
          if (generation !== this.generation || this.subscriptions.get(sub.channel) !== sub) return;
          sub.handleError(err instanceof FanoutClientError ? err : new FanoutClientError('token', `cannot get a subscription token: ${(err as Error)?.message ?? String(err)}`, { channel: sub.channel, cause: err }));
        }
      })();
    }, refreshDelay(expires));
  }

  // ---------------------------------------------------------------- requests

  /** Sends `sub`'s subscribe; a subscription with a `token` function gets a fresh subscription token first. */
  private sendSubscribe(sub: Subscription<unknown>): void {
    if (!sub.tokenSource) return this.sendSubscribeFrame(sub, undefined);
    const generation = this.generation;
    if (sub.fetchingToken === generation) return;
    sub.fetchingToken = generation;
    const current = (): boolean => generation === this.generation && this.stateValue === 'connected' && this.subscriptions.get(sub.channel) === sub && sub.active;
    Promise.resolve()
      .then(() => sub.tokenSource!())
      .then(
        (token) => {
          if (sub.fetchingToken === generation) sub.fetchingToken = undefined;
          if (current()) this.sendSubscribeFrame(sub, token);
        },
        (err: unknown) => {
          if (sub.fetchingToken === generation) sub.fetchingToken = undefined;
          if (!current()) return;
          sub.handleError(new FanoutClientError('token', `cannot get a subscription token: ${(err as Error)?.message ?? String(err)}`, { channel: sub.channel, cause: err }));
          this.retrySubscribe(sub);
        },
      );
  }

  private sendSubscribeFrame(sub: Subscription<unknown>, token: string | undefined): void {
    const since = sub.sinceForNextSubscribe();
    sub.asked = since;
    sub.requestId = this.requests.subscribe(sub, since, token, sub.delta);
  }

  /**
   * @internal A delta subscription could not apply a delta (it lacks the message it is against):
   * unsubscribe and subscribe again from its position, in one go on this connection, so what it
   * missed comes again, whole.
   */
  resync(sub: Subscription<unknown>): void {
    if (this.subscriptions.get(sub.channel) !== sub || this.stateValue !== 'connected' || sub.requestId !== undefined) return;
    this.request('unsubscribe', { type: 'unsubscribe', channel: sub.channel }, { queue: false }).catch(() => {});
    sub.handleDisconnect();
    this.sendSubscribe(sub);
  }

  private request(kind: RequestKind, body: ClientFrame, { queue = true } = {}): Promise<ServerFrame> {
    if (this.stopped) return Promise.reject(new FanoutClientError('closed', `cannot ${kind}: the client is closed (call connect() first)`, { channel: channelOf(body) }));
    return this.requests.add(kind, body, { connected: this.stateValue === 'connected', queue });
  }
}


/** Creates a client and starts connecting. */
export function connect(options: ClientOptions): FanoutClient {
  const client = new FanoutClient(options);
  void client.connect();
  return client;
}
