/**
 * The node's local sockets: admitting an upgraded socket, handing its messages to its endpoint
 * (after --rate-limit and --rate-limit-bytes), heartbeats, slow consumers, and closing.
 *
 * No closure per socket: the listeners are module-level functions that find the socket's
 * {@link Client} and this registry on the `ws` object itself.
 */
import type { IncomingMessage } from 'node:http';
import type { WebSocket } from 'ws';
import { RATE_LIMIT_BYTES_BURST, TIMINGS, type Config } from '../config/schema.js';
import { CloseCode } from '../errors.js';
import type { Logger } from '../logger.js';
import { Client, rawSocket, type ClientSocket, type ClientWire, type Identity, type TransportName } from '../transport/client.js';
import type { SecurityGate } from '../transport/gate.js';
import { ByteRateLimiter, RateLimiter, RateVerdict } from '../transport/limits.js';
import type { Endpoint } from './endpoint.js';
import { HeartbeatWheel, PING_FRAME, slicesFor } from './heartbeat.js';
import type { SocketMetrics } from './socket-metrics.js';
import type { Outbox } from './outbox.js';

export interface SocketsHost {
  readonly config: Pick<Config, 'rateLimit' | 'rateLimitBytes' | 'maxPayload' | 'heartbeat'>;
  readonly logger: Logger;
  readonly metrics: SocketMetrics;
  readonly outbox: Outbox;
  readonly gate: SecurityGate;
  endpoint(path: string): Endpoint | undefined;
}

/** A connection as {@link Sockets.adopt} listens to it: a `ws` WebSocket or an SSE session. */
export type WireEvents = ClientWire & {
  on(event: 'message', listener: (this: never, data: Buffer, isBinary: boolean) => void): unknown;
  on(event: 'pong', listener: (this: never) => void): unknown;
  on(event: 'error', listener: (this: never, err: Error) => void): unknown;
  on(event: 'close', listener: (this: never, code: number) => void): unknown;
};

const kClient = Symbol('fanout.client');
const kSockets = Symbol('fanout.sockets');
type TaggedSocket = WireEvents & { [kClient]?: Client; [kSockets]?: Sockets };

export class Sockets {
  /** The open clients, in their heartbeat slots (node/heartbeat.ts, which keeps their heartbeat state); one slot when heartbeats are off. */
  private readonly clients: HeartbeatWheel<Client>;
  private readonly heartbeatTickMs: number;
  private readonly rateLimiter: RateLimiter | undefined;
  private readonly byteLimiter: ByteRateLimiter | undefined;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  /** Open clients with a user, by user: what the server API on users acts on (docs/auth.md). */
  private readonly byUser = new Map<string, Set<Client>>();
  /**
   * For the sockets of an endpoint with an {@link Endpoint.idlePing}: the socket's `bytesWritten`
   * at the wheel's previous sample (two per interval), times two, plus one when the half interval
   * before that sample was quiet too. No bookkeeping on the write path at all.
   */
  private readonly written = new Map<Client, number>();

  constructor(private readonly host: SocketsHost) {
    const { rateLimit, rateLimitBytes, maxPayload, heartbeat } = host.config;
    this.rateLimiter = rateLimit > 0 ? new RateLimiter(rateLimit) : undefined;
    this.byteLimiter = rateLimitBytes > 0 ? new ByteRateLimiter(rateLimitBytes, RATE_LIMIT_BYTES_BURST * maxPayload) : undefined;
    const { slices, tickMs } = heartbeat > 0 ? slicesFor(heartbeat) : { slices: 1, tickMs: 0 };
    this.heartbeatTickMs = tickMs;
    this.clients = new HeartbeatWheel<Client>(slices, { ping: (client) => this.ping(client), terminate: terminateClient, sample: (client) => this.sample(client) });
  }

  get size(): number {
    return this.clients.size;
  }

  /** The open clients of `user`, as a snapshot. */
  ofUser(user: string): Client[] {
    const set = this.byUser.get(user);
    return set ? [...set] : [];
  }

  /** Every open client, as a snapshot. */
  list(): Client[] {
    return [...this.clients];
  }

  /** Takes a socket the gate admitted and `ws` upgraded; `id` is the client id the gate used. */
  accept(endpoint: Endpoint, ws: WebSocket, req: IncomingMessage, identity: Identity, id: string): Client {
    const socket = rawSocket(ws);
    socket.setNoDelay(true);
    return this.adopt(endpoint, ws, socket, req, identity, id, 'websocket');
  }

  /**
   * Takes a connection the gate admitted: a WebSocket, or an SSE session that emits the same
   * events (`message`, `pong`, `error`, `close`) and takes the same pre-framed writes
   * (transport/sse-session.ts). Everything after this is the same for both.
   */
  adopt(endpoint: Endpoint, ws: WireEvents, socket: ClientSocket, req: IncomingMessage, identity: Identity, id: string, transport: TransportName, session?: string): Client {
    const { gate, logger, metrics } = this.host;
    const ip = gate.ipOf(req);
    const client = new Client(id, ws, socket, endpoint.path, ip, req.headers.origin, identity, transport);
    client.session = session;
    (ws as TaggedSocket)[kClient] = client;
    (ws as TaggedSocket)[kSockets] = this;
    this.clients.add(client);
    const user = identity.user;
    if (user !== undefined) {
      let set = this.byUser.get(user);
      if (!set) this.byUser.set(user, (set = new Set()));
      set.add(client);
    }
    metrics.connectionOpened(endpoint.path, transport);
    gate.opened(client);
    ws.on('message', onSocketMessage);
    ws.on('pong', onSocketPong);
    ws.on('error', onSocketError);
    ws.on('close', onSocketClose);
    logger.info({ client: client.id, endpoint: endpoint.path, transport, ip, origin: client.origin, user: identity.user }, 'connected');
    try {
      endpoint.open(client);
    } catch (err) {
      logger.error({ err, endpoint: endpoint.path }, 'endpoint open failed');
      ws.close(CloseCode.INTERNAL_ERROR, 'internal error');
    }
    return client;
  }

  /** @internal */
  message(client: Client, data: Buffer, isBinary: boolean): void {
    this.clients.heard(client);
    this.host.metrics.messageIn(client.endpoint, data.length);
    if (this.rateLimiter || this.byteLimiter) {
      const now = Date.now();
      const verdict = this.rateLimiter?.take(client, now) ?? RateVerdict.OK;
      if (verdict !== RateVerdict.OK) return this.overRateLimit(client, data, verdict, 'messages');
      // The frame's bytes as received (what ws assembled), before any decoding.
      const bytes = this.byteLimiter?.take(client, data.length, now) ?? RateVerdict.OK;
      if (bytes !== RateVerdict.OK) return this.overRateLimit(client, data, bytes, 'bytes');
    }
    try {
      this.host.endpoint(client.endpoint)?.message(client, data, isBinary);
    } catch (err) {
      this.host.logger.error({ err, client: client.id }, 'message handler failed');
    }
  }

  /**
   * A message over --rate-limit or --rate-limit-bytes is dropped. The endpoint answers if it has a
   * protocol to answer with (`rate_limited` error frame); otherwise, or on persistent abuse, the
   * socket closes 1008.
   */
  private overRateLimit(client: Client, data: Buffer, verdict: RateVerdict, unit: 'messages' | 'bytes'): void {
    const { logger, metrics, outbox, config } = this.host;
    const endpoint = this.host.endpoint(client.endpoint);
    const limit = unit === 'messages' ? `--rate-limit (${config.rateLimit}/s)` : `--rate-limit-bytes (${config.rateLimitBytes} bytes/s)`;
    const dropped = (unit === 'messages' ? this.rateLimiter : this.byteLimiter)?.dropped(client) ?? 0;
    const who = { client: client.id, ip: client.ip, origin: client.origin, user: client.identity.user, limit };
    if (verdict === RateVerdict.ABUSE || !endpoint?.rateLimited) {
      if (client.ws.readyState !== 1) return;
      metrics.rateLimited(client.endpoint, true);
      logger.warn({ ...who, dropped }, verdict === RateVerdict.ABUSE ? 'rate limit abuse; closing' : 'rate limit hit; closing');
      outbox.flush();
      client.ws.close(CloseCode.POLICY_VIOLATION, verdict === RateVerdict.ABUSE ? 'rate limit abuse' : 'rate limit exceeded');
      return;
    }
    metrics.rateLimited(client.endpoint);
    // Logged once per abuse window, not per dropped message.
    if (unit === 'messages' ? dropped === 1 : dropped === data.length) logger.warn(who, 'rate limit hit');
    try {
      endpoint.rateLimited(client, data, limit);
    } catch (err) {
      logger.error({ err, client: client.id }, 'rateLimited handler failed');
    }
  }

  /** @internal ws reports a protocol or limit error; the 'close' event follows. */
  error(client: Client, err: Error & { code?: string }): void {
    this.host.logger.warn({ client: client.id, ip: client.ip, origin: client.origin, user: client.identity.user, code: err.code, err: err.message }, 'socket error');
  }

  /** @internal A socket the wheel found alive: a pong. */
  heard(client: Client): void {
    this.clients.heard(client);
  }

  /**
   * @internal The wheel's sample of a socket, twice per --heartbeat: the endpoint's idle ping once
   * two half intervals in a row passed with nothing written to it. So an idle connection gets one
   * every interval, a connection written to at least every half interval gets none, and at worst
   * one and a half intervals pass between two frames (docs/protocol.md, `ping`).
   */
  sample(client: Client): void {
    const ping = this.host.endpoint(client.endpoint)?.idlePing;
    if (ping === undefined || !client.open) return;
    const socket = client.socket;
    // bytesWritten counts bytes still queued in the socket too: what the outbox wrote is included.
    const now = socket.bytesWritten;
    const before = this.written.get(client);
    if (before === undefined || Math.floor(before / 2) !== now) this.written.set(client, now * 2);
    else if (before % 2 === 0) this.written.set(client, now * 2 + 1);
    else {
      socket.write(ping);
      this.written.set(client, socket.bytesWritten * 2);
    }
  }

  /**
   * @internal The heartbeat's WebSocket ping: the one pre-built frame, written straight to the
   * socket as the outbox writes its frames. A browser never sees it, so it does not count as a
   * frame written for {@link sample}.
   */
  ping(client: Client): void {
    if (!client.open) return;
    const before = client.socket.bytesWritten;
    client.socket.write(PING_FRAME);
    const record = this.written.get(client);
    if (record !== undefined && Math.floor(record / 2) === before) this.written.set(client, record + 2 * PING_FRAME.length);
  }

  /** @internal */
  closed(client: Client, code: number): void {
    if (!this.clients.delete(client)) return;
    this.written.delete(client);
    const user = client.identity.user;
    const set = user === undefined ? undefined : this.byUser.get(user);
    if (set?.delete(client) && set.size === 0) this.byUser.delete(user!);
    const { gate, logger, metrics, outbox } = this.host;
    // What the node's parts kept for the connection goes with it.
    outbox.closed(client);
    this.rateLimiter?.forget(client);
    this.byteLimiter?.forget(client);
    metrics.connectionClosed(client.endpoint, code, client.transport);
    gate.closed(client);
    try {
      this.host.endpoint(client.endpoint)?.close(client);
    } catch (err) {
      logger.error({ err, client: client.id }, 'endpoint close failed');
    }
    logger.info({ client: client.id, code, ip: client.ip, origin: client.origin, user: client.identity.user }, 'closed');
  }

  /** The outbox found `client` over --max-buffered: close it with 4508, and cut it if the close cannot get through. */
  dropSlowConsumer(client: Client): void {
    this.host.metrics.slowConsumer(client.endpoint);
    this.host.logger.warn(
      { client: client.id, ip: client.ip, origin: client.origin, user: client.identity.user, buffered: client.socket.writableLength },
      'slow consumer closed',
    );
    // The close frame queues behind the backlog the client is not reading; cut the socket soon after.
    client.ws.close(CloseCode.SLOW_CONSUMER, 'slow consumer');
    setTimeout(() => client.ws.terminate(), TIMINGS.slowConsumerCutMs).unref();
  }

  /**
   * Visits each socket once per --heartbeat seconds, a slice of them every ~100 ms: a socket
   * silent since its previous visit is pinged, one that stayed silent a whole interval after its
   * ping is cut (the rule and the reasons in node/heartbeat.ts).
   */
  startHeartbeat(): void {
    if (this.host.config.heartbeat <= 0 || this.heartbeatTimer) return;
    this.heartbeatTimer = setInterval(() => this.clients.tick(), this.heartbeatTickMs);
    this.heartbeatTimer.unref();
  }

  stopHeartbeat(): void {
    clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = undefined;
  }

  /** Sends every socket a close frame. */
  closeAll(code: number, reason: string): void {
    for (const client of this.clients) client.ws.close(code, reason);
  }

  /** Cuts every socket that is still open. */
  terminateAll(): void {
    for (const client of this.clients) client.ws.terminate();
  }
}

function terminateClient(client: Client): void {
  client.ws.terminate();
}

// Shared listeners (`this` is the socket): no closure per connection.
function onSocketMessage(this: TaggedSocket, data: Buffer, isBinary: boolean): void {
  const client = this[kClient];
  if (client) this[kSockets]!.message(client, data, isBinary);
}
function onSocketPong(this: TaggedSocket): void {
  const client = this[kClient];
  if (client) this[kSockets]!.heard(client);
}
function onSocketError(this: TaggedSocket, err: Error): void {
  // ws closes the socket after an error (bad frame, too big, bad UTF-8); 'close' follows.
  const client = this[kClient];
  if (client) this[kSockets]!.error(client, err);
}
function onSocketClose(this: TaggedSocket, code: number): void {
  const client = this[kClient];
  if (client) this[kSockets]!.closed(client, code);
}
