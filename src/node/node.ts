/**
 * A Fanout node: its lifecycle, its local sockets, its endpoints, and its link to the bus.
 *
 * A node only knows its own sockets. Everything a client sends that others must see is delivered
 * locally at once and published on the bus in an envelope naming this node; messages that come
 * back from the bus with this node as origin are dropped, so each socket gets each message once.
 *
 * Lifecycle: starting → running → draining → closed. `close()` is safe to call twice.
 */
import type { IncomingMessage, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { WebSocket, WebSocketServer } from 'ws';
import type { Bus, BusStatus } from '../bus/bus.js';
import { createBus } from '../bus/create.js';
import type { MemoryBroker } from '../bus/memory.js';
import type { Config } from '../config/schema.js';
import { BusUnavailableError, CloseCode } from '../errors.js';
import { ChannelEndpoint } from '../channels/endpoint.js';
import { addApiRoutes } from '../http/api.js';
import { addDemoPageRoutes } from '../http/demo-page.js';
import { addHealthRoutes } from '../http/health.js';
import { addMetricsRoutes } from '../http/metrics.js';
import { pathOf, Router } from '../http/router.js';
import { silentLogger, type Logger } from '../logger.js';
import { Metrics } from '../metrics.js';
import { SecurityGate, type Gate } from '../transport/gate.js';
import { RateLimiter, RateVerdict } from '../transport/limits.js';
import { createTransport } from '../transport/server.js';
import { Client, newClientId, rawSocket, type Identity } from './client.js';
import { EchoEndpoint } from './echo.js';
import type { Endpoint } from './endpoint.js';
import { decodeEnvelope, encodeEnvelope, isFromOrigin, preciseNow, type EnvelopeKind } from './envelope.js';
import { Outbox } from './outbox.js';

export type NodeState = 'starting' | 'running' | 'draining' | 'closed';

/** Handles the body of a bus message on a topic the node subscribed to. */
export type TopicHandler = (kind: number, body: Buffer, origin: string) => void;

export interface NodeOptions {
  readonly config: Config;
  /** The bus; built from `config.bus` when left out. */
  readonly bus?: Bus;
  /** Shared in-process broker, so tests can run several memory-bus nodes in one process. */
  readonly broker?: MemoryBroker;
  readonly logger?: Logger;
  /** Also export process metrics (CPU, memory, fds, event loop) on /metrics; `fanout serve` turns it on. */
  readonly processMetrics?: boolean;
}

/** During a drain, clients are closed in slices at most this often (ms), spread over --drain-timeout. */
const DRAIN_TICK_MS = 50;

/** The node behind a socket, kept on the `ws` object so its listeners need no per-socket closures. */
const kClient = Symbol('fanout.client');
const kNode = Symbol('fanout.node');
type TaggedSocket = WebSocket & { [kClient]?: Client; [kNode]?: FanoutNode };

export class FanoutNode {
  readonly config: Config;
  readonly id: string;
  readonly bus: Bus;
  readonly logger: Logger;
  readonly router = new Router();
  readonly outbox: Outbox;
  /** This node's Prometheus metrics (GET /metrics); other modules report through its methods. */
  readonly metrics: Metrics;
  gate: Gate;
  private readonly rateLimiter: RateLimiter | undefined;

  private stateValue: NodeState = 'starting';
  private readonly endpoints = new Map<string, Endpoint>();
  private readonly readinessChecks: Array<() => boolean> = [];
  private readonly clients = new Set<Client>();
  private readonly topics = new Map<string, TopicHandler>();
  private readonly idBytes: Buffer;
  private readonly stateListeners: Array<(state: NodeState) => void> = [];
  private readonly busListeners: Array<(status: BusStatus) => void> = [];
  private server: Server | undefined;
  private wss: WebSocketServer | undefined;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private closing: Promise<void> | undefined;
  private lastPublishError = 0;
  /** Publish times of the bus messages delivered in this event-loop turn, observed at the flush. */
  private latencyStamps: number[] = [];

  constructor(options: NodeOptions) {
    this.config = options.config;
    this.id = options.config.nodeId;
    this.idBytes = Buffer.from(this.id, 'latin1');
    this.logger = options.logger ?? silentLogger();
    this.bus = options.bus ?? createBus(this.config.bus, { broker: options.broker });
    this.gate = new SecurityGate(this);
    this.rateLimiter = this.config.rateLimit > 0 ? new RateLimiter(this.config.rateLimit) : undefined;
    this.metrics = new Metrics({ node: this.id, processMetrics: options.processMetrics, historyTtlMs: this.config.historyTtl * 1000 });
    this.metrics.sources({ ready: () => this.ready });
    this.outbox = new Outbox({
      maxBuffered: this.config.maxBuffered,
      coalesceMs: this.config.coalesceMs,
      onSlowConsumer: (client) => this.dropSlowConsumer(client),
      onFlush: (frames, sockets, bytes) => this.flushed(frames, sockets, bytes),
    });

    this.bus.onMessage((topic, payload) => this.fromBus(topic, payload));
    this.bus.onStatus((status, cause) => this.busStatusChanged(status, cause));

    addHealthRoutes(this);
    addMetricsRoutes(this);
    addDemoPageRoutes(this);
    this.addEndpoint(new EchoEndpoint(this));
    const channels = new ChannelEndpoint(this);
    this.addEndpoint(channels);
    addApiRoutes(this, channels.service);
    // With --history on another Redis, channel traffic rides that Redis: it must be up too.
    this.addReadinessCheck(() => channels.service.stores.transport.connected);
  }

  get state(): NodeState {
    return this.stateValue;
  }

  /** Serving, connected to the bus, and every readiness check passing: what /readyz and HAProxy's check report. */
  get ready(): boolean {
    return this.stateValue === 'running' && this.bus.connected && this.readinessChecks.every((check) => check());
  }

  /** Adds a condition /readyz requires besides running with the bus connected. */
  addReadinessCheck(check: () => boolean): void {
    this.readinessChecks.push(check);
  }

  get clientCount(): number {
    return this.clients.size;
  }

  /** The address the node listens on (after {@link start}). */
  get address(): AddressInfo {
    const address = this.server?.address();
    if (!address || typeof address === 'string') throw new Error('node is not listening');
    return address;
  }

  /** Calls `listener` on every lifecycle change. */
  onState(listener: (state: NodeState) => void): void {
    this.stateListeners.push(listener);
  }

  /** Calls `listener` on every bus status change, after the node has resubscribed. */
  onBusStatus(listener: (status: BusStatus) => void): void {
    this.busListeners.push(listener);
  }

  /** Adds a WebSocket endpoint at its path. */
  addEndpoint(endpoint: Endpoint): void {
    this.endpoints.set(endpoint.path, endpoint);
  }

  endpoint(path: string): Endpoint | undefined {
    return this.endpoints.get(path);
  }

  /** A broker topic name under this cluster's prefix. */
  topic(name: string): string {
    return `${this.config.busPrefix}:${name}`;
  }

  /** Connects the bus (without waiting for it) and starts listening. */
  async start(): Promise<void> {
    if (this.stateValue !== 'starting') throw new Error(`cannot start a node that is ${this.stateValue}`);
    const { server, wss } = createTransport(this);
    this.server = server;
    this.wss = wss;
    this.bus.connect().catch((err: Error) => {
      this.logger.warn({ err: err.message, bus: this.bus.kind }, 'bus not reachable yet; retrying, /readyz says 503 until then');
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.config.port, this.config.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    if (this.config.heartbeat > 0) {
      this.heartbeatTimer = setInterval(() => this.heartbeat(), this.config.heartbeat * 1000);
      this.heartbeatTimer.unref();
    }
    this.setState('running');
    this.logger.info(
      { port: this.address.port, host: this.config.host, bus: this.bus.kind, tls: this.config.tls !== undefined },
      'node listening',
    );
  }

  // ---------------------------------------------------------------- bus

  /** Subscribes this node to `topic`; the subscription survives broker reconnects. */
  subscribeTopic(topic: string, handler: TopicHandler): void {
    const had = this.topics.has(topic);
    this.topics.set(topic, handler);
    if (!had && this.bus.connected) this.busSubscribe(topic);
  }

  unsubscribeTopic(topic: string): void {
    if (!this.topics.delete(topic)) return;
    this.bus.unsubscribe(topic).catch(() => {});
  }

  /** Publishes `body` to every other node. Rejects with BusUnavailableError when the broker cannot take it. */
  async publish(topic: string, kind: EnvelopeKind, body: Buffer): Promise<void> {
    try {
      await this.bus.publish(topic, encodeEnvelope(kind, this.id, body));
      this.metrics.published(kind);
    } catch (err) {
      this.metrics.busError('publish');
      const now = Date.now();
      if (now - this.lastPublishError > 10_000) {
        this.lastPublishError = now;
        this.logger.warn({ err: (err as Error).message, topic }, 'bus publish failed (logged at most every 10 s)');
      }
      throw err instanceof BusUnavailableError ? err : new BusUnavailableError((err as Error).message, { cause: err });
    }
  }

  private busSubscribe(topic: string): void {
    this.bus.subscribe(topic).catch((err: Error) => {
      // Retried when the bus reports `connected` again.
      this.metrics.busError('subscribe');
      this.logger.debug({ err: err.message, topic }, 'bus subscribe failed');
    });
  }

  private fromBus(topic: string, payload: Buffer): void {
    if (isFromOrigin(payload, this.idBytes)) return;
    const handler = this.topics.get(topic);
    if (!handler) return;
    const envelope = decodeEnvelope(payload);
    if (!envelope) {
      this.logger.debug({ topic }, 'dropped a bus message that is not a Fanout envelope');
      return;
    }
    this.metrics.busMessageIn(envelope.kind);
    const queued = this.outbox.pending;
    try {
      handler(envelope.kind, envelope.body, envelope.origin);
    } catch (err) {
      this.logger.error({ err, topic }, 'bus message handler failed');
    }
    // Latency is measured for messages that reached sockets, at the write (see flushed()).
    if (envelope.publishedAt !== undefined && this.outbox.pending > queued) this.latencyStamps.push(envelope.publishedAt);
  }

  /** After each outbox flush: counters once per flush, and the latency of this turn's bus messages. */
  private flushed(frames: number, sockets: number, bytes: number): void {
    this.metrics.flushed(frames, sockets, bytes);
    if (this.latencyStamps.length === 0) return;
    const now = preciseNow();
    for (const at of this.latencyStamps) this.metrics.publishLatency(now - at);
    this.latencyStamps = [];
  }

  private busStatusChanged(status: BusStatus, cause?: Error): void {
    this.metrics.busConnected(status === 'connected');
    if (status === 'connected') {
      this.logger.info({ bus: this.bus.kind, topics: this.topics.size }, 'bus connected');
      for (const topic of this.topics.keys()) this.busSubscribe(topic);
    } else if (status === 'disconnected') {
      this.logger.warn({ bus: this.bus.kind, err: cause?.message }, 'bus disconnected; retrying');
    }
    for (const listener of this.busListeners) listener(status);
  }

  // ---------------------------------------------------------------- sockets

  /** Takes a socket the gate admitted and `ws` upgraded. */
  accept(endpoint: Endpoint, ws: WebSocket, req: IncomingMessage, identity: Identity): void {
    const socket = rawSocket(ws);
    const ip = this.gate.ipOf?.(req) ?? req.socket.remoteAddress ?? '';
    const client = new Client(newClientId(), ws, socket, endpoint.path, ip, req.headers.origin, identity);
    (ws as TaggedSocket)[kClient] = client;
    (ws as TaggedSocket)[kNode] = this;
    socket.setNoDelay(true);
    this.clients.add(client);
    this.metrics.connectionOpened(endpoint.path);
    this.gate.opened?.(client);
    ws.on('message', onSocketMessage);
    ws.on('pong', onSocketPong);
    ws.on('error', onSocketError);
    ws.on('close', onSocketClose);
    this.logger.info({ client: client.id, endpoint: endpoint.path, ip, origin: client.origin, user: identity.user }, 'connected');
    try {
      endpoint.open(client);
    } catch (err) {
      this.logger.error({ err, endpoint: endpoint.path }, 'endpoint open failed');
      ws.close(CloseCode.INTERNAL_ERROR, 'internal error');
    }
  }

  /** @internal A gate refusal, for logs and metrics. */
  rejected(req: IncomingMessage, status: number, reason: string): void {
    this.metrics.rejected(reason, status);
    const ip = this.gate.ipOf?.(req) ?? req.socket.remoteAddress;
    this.logger.warn({ ip, origin: req.headers.origin, path: pathOf(req.url), status, reason }, 'upgrade refused');
  }

  /** @internal */
  socketMessage(client: Client, data: Buffer, isBinary: boolean): void {
    client.alive = true;
    this.metrics.messageIn(client.endpoint, data.length);
    if (this.rateLimiter) {
      const verdict = this.rateLimiter.take(client, Date.now());
      if (verdict !== RateVerdict.OK) return this.overRateLimit(client, data, verdict);
    }
    try {
      this.endpoints.get(client.endpoint)?.message(client, data, isBinary);
    } catch (err) {
      this.logger.error({ err, client: client.id }, 'message handler failed');
    }
  }

  /**
   * A message over --rate-limit is dropped. The endpoint answers if it has a protocol to answer
   * with (`rate_limited` error frame); otherwise, or on persistent abuse, the socket closes 1008.
   */
  private overRateLimit(client: Client, data: Buffer, verdict: RateVerdict): void {
    const endpoint = this.endpoints.get(client.endpoint);
    const who = { client: client.id, ip: client.ip, origin: client.origin, user: client.identity.user, limit: this.config.rateLimit };
    if (verdict === RateVerdict.ABUSE || !endpoint?.rateLimited) {
      if (client.ws.readyState !== 1) return;
      this.metrics.rateLimited(client.endpoint, true);
      this.logger.warn({ ...who, dropped: client.rateDropped }, verdict === RateVerdict.ABUSE ? 'rate limit abuse; closing' : 'rate limit hit; closing');
      this.outbox.flush();
      client.ws.close(CloseCode.POLICY_VIOLATION, verdict === RateVerdict.ABUSE ? 'rate limit abuse' : 'rate limit exceeded');
      return;
    }
    this.metrics.rateLimited(client.endpoint);
    // Logged once per abuse window, not per dropped message.
    if (client.rateDropped === 1) this.logger.warn(who, 'rate limit hit');
    try {
      endpoint.rateLimited(client, data);
    } catch (err) {
      this.logger.error({ err, client: client.id }, 'rateLimited handler failed');
    }
  }

  /** @internal ws reports a protocol or limit error; the 'close' event follows. */
  socketError(client: Client, err: Error & { code?: string }): void {
    this.logger.warn({ client: client.id, ip: client.ip, origin: client.origin, user: client.identity.user, code: err.code, err: err.message }, 'socket error');
  }

  /** @internal */
  socketClosed(client: Client, code: number): void {
    if (!this.clients.delete(client)) return;
    this.metrics.connectionClosed(client.endpoint, code);
    this.gate.closed?.(client);
    try {
      this.endpoints.get(client.endpoint)?.close(client);
    } catch (err) {
      this.logger.error({ err, client: client.id }, 'endpoint close failed');
    }
    this.logger.info({ client: client.id, code, ip: client.ip, origin: client.origin, user: client.identity.user }, 'closed');
  }

  private dropSlowConsumer(client: Client): void {
    this.metrics.slowConsumer(client.endpoint);
    this.logger.warn(
      { client: client.id, ip: client.ip, origin: client.origin, user: client.identity.user, buffered: client.socket.writableLength },
      'slow consumer closed',
    );
    // The close frame queues behind the backlog the client is not reading; cut the socket soon after.
    client.ws.close(CloseCode.SLOW_CONSUMER, 'slow consumer');
    setTimeout(() => client.ws.terminate(), 1000).unref();
  }

  private heartbeat(): void {
    for (const client of this.clients) {
      if (!client.alive) {
        client.ws.terminate();
        continue;
      }
      client.alive = false;
      client.ws.ping();
    }
  }

  // ---------------------------------------------------------------- lifecycle

  private setState(state: NodeState): void {
    if (this.stateValue === state) return;
    this.stateValue = state;
    for (const listener of this.stateListeners) listener(state);
  }

  /**
   * Graceful drain: /readyz answers 503 at once, the node keeps serving for `drainDelay` seconds
   * (so HAProxy's check takes it out), then closes its clients with 1001 spread over
   * `drainTimeout` seconds (so they do not all reconnect at once), then closes.
   */
  async drain(): Promise<void> {
    if (this.stateValue !== 'running') return this.close();
    this.setState('draining');
    this.logger.info({ delay: this.config.drainDelay, timeout: this.config.drainTimeout, clients: this.clients.size }, 'draining');
    await sleep(this.config.drainDelay * 1000);
    const clients = [...this.clients];
    await this.closeSpread(clients, CloseCode.GOING_AWAY, 'node draining', this.config.drainTimeout);
    this.logger.info({ clients: clients.length }, 'drained: clients closed');
    await this.close();
  }

  /**
   * Closes `clients` with `code` in even slices over `seconds`, whatever their number: one slice
   * every `interval` ms (at least DRAIN_TICK_MS apart), so their reconnects arrive spread out
   * instead of all at once. Clients already closed are skipped.
   */
  async closeSpread(clients: readonly Client[], code: number, reason: string, seconds: number): Promise<void> {
    const total = seconds * 1000;
    const interval = clients.length === 0 ? 0 : Math.max(DRAIN_TICK_MS, total / clients.length);
    const perSlice = total === 0 ? clients.length : Math.ceil((clients.length * interval) / total);
    for (let i = 0; i < clients.length; i += perSlice) {
      if (i > 0) await sleep(interval);
      for (const client of clients.slice(i, i + perSlice)) if (client.open) client.ws.close(code, reason);
    }
  }

  /** Stops at once: closes clients with 1001, the bus and the server. Safe to call twice. */
  close(): Promise<void> {
    this.closing ??= this.doClose();
    return this.closing;
  }

  private async doClose(): Promise<void> {
    if (this.stateValue !== 'draining') this.setState('draining');
    clearInterval(this.heartbeatTimer);
    this.gate.stop?.();
    for (const client of this.clients) client.ws.close(CloseCode.GOING_AWAY, 'node shutting down');
    this.outbox.flush();
    for (const endpoint of this.endpoints.values()) await endpoint.stop?.().catch(() => {});
    await this.bus.close().catch(() => {});
    const server = this.server;
    if (server) {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections?.();
        // Sockets that ignore the close frame are cut after a short grace.
        setTimeout(() => {
          for (const client of this.clients) client.ws.terminate();
          server.closeAllConnections?.();
        }, 1000).unref();
      });
    }
    this.wss?.close();
    this.setState('closed');
  }
}

// Shared listeners (`this` is the socket): no closure per connection.
function onSocketMessage(this: TaggedSocket, data: Buffer, isBinary: boolean): void {
  const client = this[kClient];
  if (client) this[kNode]!.socketMessage(client, data, isBinary);
}
function onSocketPong(this: TaggedSocket): void {
  const client = this[kClient];
  if (client) client.alive = true;
}
function onSocketError(this: TaggedSocket, err: Error): void {
  // ws closes the socket after an error (bad frame, too big, bad UTF-8); 'close' follows.
  const client = this[kClient];
  if (client) this[kNode]!.socketError(client, err);
}
function onSocketClose(this: TaggedSocket, code: number): void {
  const client = this[kClient];
  if (client) this[kNode]!.socketClosed(client, code);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Builds a node from its parts; call `start()` to listen. */
export function createNode(options: NodeOptions): FanoutNode {
  return new FanoutNode(options);
}
