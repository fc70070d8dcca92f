/**
 * The core of a Fanout node: its lifecycle, its server and sockets, its outbox and its link to
 * the bus, reporting to the metrics the composition root registered for it ({@link CoreMetrics}). Features (echo, channels, the HTTP API, health, the demo page) are not
 * known here: the composition root (src/app.ts) registers them as endpoints, routes, readiness
 * checks and stop hooks, each with a narrow context.
 *
 * A node only knows its own sockets. Whatever others must see crosses the bus through the node's
 * {@link TopicRouter} (src/node/topics.ts), the one route every message takes.
 *
 * Lifecycle: starting → running → draining → closed. `close()` is safe to call twice.
 */
import type { IncomingMessage, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { WebSocket, WebSocketServer } from 'ws';
import type { Bus } from '../stores/bus.js';
import { createBus } from '../brokers/create-bus.js';
import type { MemoryBroker } from '../brokers/memory/bus.js';
import { TIMINGS, type Config } from '../config/schema.js';
import { CloseCode, errorMessage, type ConfigError } from '../errors.js';
import { Hooks, type HookObserver } from '../hooks/hooks.js';
import { silentLogger, type Logger } from '../logger.js';
import type { Client, Identity } from '../transport/client.js';
import { SecurityGate } from '../transport/gate.js';
import { pathOf, Router } from '../transport/router.js';
import { createTransport } from '../transport/server.js';
import type { BusMetrics } from './bus-metrics.js';
import { ClusterCalls } from './cluster-calls.js';
import { closeSpread } from './drain.js';
import type { Endpoint } from './endpoint.js';
import type { NodeMetrics, UndeliveredReason } from './metrics.js';
import { Outbox } from './outbox.js';
import { QuietLog } from './quiet-log.js';
import { Revocations } from './revocations.js';
import type { SocketMetrics } from './socket-metrics.js';
import { Sockets } from './sockets.js';
import { SseTransport } from './sse.js';
import { DeliveryLatency, TopicRouter } from './topics.js';

export type NodeState = 'starting' | 'running' | 'draining' | 'closed';

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

/**
 * What the core reports to: its own families (node/metrics.ts, node/socket-metrics.ts,
 * node/bus-metrics.ts), and the refused upgrades and hook calls it sees, as plain callbacks (their
 * families live beside the gate and the hooks). The composition root registers them all on the
 * node's registry (src/app.ts).
 */
export interface CoreMetrics {
  readonly node: NodeMetrics;
  readonly sockets: SocketMetrics;
  /** Shared by every route of the node. */
  readonly bus: BusMetrics;
  /** An upgrade was refused with `status` before the 101, for `reason`. */
  readonly upgradeRefused: (reason: string, status: number) => void;
  /** A back-end hook call ended. */
  readonly hookCalls: HookObserver;
}

export class NodeCore {
  readonly config: Config;
  readonly id: string;
  readonly bus: Bus;
  readonly logger: Logger;
  /** Plain HTTP routes (health, metrics, API, demo page). */
  readonly router = new Router();
  readonly outbox: Outbox;
  /** The route of every message over the node's bus. */
  readonly topics: TopicRouter;
  /** Publish-to-write latency, shared by every route of this node. */
  readonly latency: DeliveryLatency;
  readonly gate: SecurityGate;
  /** The back-end hooks (--connect-hook, --subscribe-hook, --publish-hook), when any is configured. */
  readonly hooks: Hooks | undefined;
  /** Calls that act on every node (the server API on users), over {@link topics}. */
  readonly calls: ClusterCalls;
  /** The node's copy of the cluster's revocations, checked at each upgrade (fed by the composition root). */
  readonly revocations = new Revocations();
  private readonly sockets: Sockets;
  private readonly metrics: CoreMetrics;

  private stateValue: NodeState = 'starting';
  private readonly endpoints = new Map<string, Endpoint>();
  private readonly prefixed: Endpoint[] = [];
  private readonly readinessChecks: Array<() => boolean> = [];
  /** Every route of this node (its bus, a history link): each must have all its topics subscribed to be ready. */
  private readonly routers: TopicRouter[] = [];
  private readonly stopHooks: Array<() => Promise<void>> = [];
  private readonly stateListeners: Array<(state: NodeState) => void> = [];
  private readonly fatalListeners: Array<(err: ConfigError) => void> = [];
  private fatalSaid = false;
  private readonly quiet: QuietLog;
  private server: Server | undefined;
  private wss: WebSocketServer | undefined;
  private closing: Promise<void> | undefined;

  constructor(options: NodeOptions, metrics: CoreMetrics) {
    this.config = options.config;
    this.id = options.config.nodeId;
    this.logger = options.logger ?? silentLogger();
    this.quiet = new QuietLog(this.logger, TIMINGS.unnoticedLogMs);
    this.bus = options.bus ?? createBus(this.config.bus, { broker: options.broker });
    this.metrics = metrics;
    metrics.node.readiness(() => this.ready);
    metrics.bus.routesMissing(() => this.routers.reduce((n, r) => n + r.missingRoutes, 0));
    this.latency = new DeliveryLatency(metrics.bus);
    this.outbox = new Outbox({
      maxBuffered: this.config.maxBuffered,
      coalesceMs: this.config.coalesceMs,
      onSlowConsumer: (client) => this.sockets.dropSlowConsumer(client),
      onFlush: (frames, sockets, bytes) => {
        metrics.node.flushed(frames, sockets, bytes);
        this.latency.flushed();
      },
    });
    this.topics = this.createTopics(this.bus, 'bus');
    this.bus.onStatus((status) => metrics.bus.busConnected(status === 'connected'));
    const { connectHook, subscribeHook, publishHook, refreshHook, namespaces } = this.config;
    const namespaceHook = namespaces.some((ns) => typeof ns.subscribeHook === 'string' || typeof ns.publishHook === 'string');
    this.hooks =
      connectHook || subscribeHook || publishHook || refreshHook || namespaceHook
        ? new Hooks(this.config, this.logger, metrics.hookCalls)
        : undefined;
    this.gate = new SecurityGate({
      config: this.config,
      logger: this.logger,
      connectHook: this.hooks?.has('connect') ? this.hooks : undefined,
      refreshHook: this.hooks?.has('refresh') ? this.hooks : undefined,
      renewed: (client, previous) => this.endpointAt(client.endpoint)?.renewed?.(client, previous),
      accepting: () => this.stateValue === 'running',
      revoked: (identity) => this.revocations.revoked(identity),
      clientCount: () => this.sockets.size,
      flush: () => this.outbox.flush(),
    });
    this.sockets = new Sockets({ config: this.config, logger: this.logger, metrics: metrics.sockets, outbox: this.outbox, gate: this.gate, endpoint: (path) => this.endpointAt(path) });
    this.calls = new ClusterCalls({ nodeId: this.id, prefix: this.config.busPrefix, topics: this.topics, logger: this.logger });
    this.calls.start();
  }

  /** A route over another bus (a separate history Redis), with this node's origin, metrics and latency. */
  createTopics(bus: Bus, name: string): TopicRouter {
    const router = new TopicRouter({
      bus,
      nodeId: this.id,
      name,
      logger: this.logger,
      metrics: this.metrics.bus,
      latency: this.latency,
      pending: () => this.outbox.pending,
      fatal: (err) => this.fatal(err),
    });
    this.routers.push(router);
    return router;
  }

  /** Calls `listener` when retrying cannot help (a broker refused the credentials): `fanout serve` prints the line and exits 2. */
  onFatal(listener: (err: ConfigError) => void): void {
    this.fatalListeners.push(listener);
  }

  private fatal(err: ConfigError): void {
    // Once: two connections to the same refusing broker (the bus and its history) say it once.
    if (this.fatalSaid) return;
    this.fatalSaid = true;
    this.logger.error({ err: err.message }, 'configuration refused by the broker; not retrying');
    for (const listener of this.fatalListeners) listener(err);
  }

  /** A stored message (a recovery finds it) was not delivered live: counted in `fanout_undelivered_total{reason}`, logged at most once per 10 s per reason. */
  undelivered(reason: UndeliveredReason, err: unknown, fields: Record<string, unknown> = {}): void {
    this.metrics.node.undelivered(reason);
    this.quiet.warn(`undelivered:${reason}`, { ...fields, reason, err: errorMessage(err) }, 'a stored message was not delivered live (subscribers recover it from history)');
  }

  get state(): NodeState {
    return this.stateValue;
  }

  /**
   * Serving, connected to the bus, every topic a route needs subscribed at its broker (a failed
   * subscribe is retried meanwhile), and every readiness check passing: what /readyz and
   * HAProxy's check report.
   */
  get ready(): boolean {
    return (
      this.stateValue === 'running' &&
      this.bus.connected &&
      this.routers.every((router) => router.missingRoutes === 0) &&
      this.readinessChecks.every((check) => check())
    );
  }

  /** Adds a condition /readyz requires besides running with the bus connected. */
  addReadinessCheck(check: () => boolean): void {
    this.readinessChecks.push(check);
  }

  /** Adds work for close(), run after the endpoints stopped and before the bus closes. */
  addStopHook(hook: () => Promise<void>): void {
    this.stopHooks.push(hook);
  }

  get clientCount(): number {
    return this.sockets.size;
  }

  /** This node's open clients of `user` (a snapshot). */
  clientsOf(user: string): Client[] {
    return this.sockets.ofUser(user);
  }

  /** This node's open clients (a snapshot). */
  clients(): Client[] {
    return this.sockets.list();
  }

  /** Closes `client` with `code` after the frames queued for it; a socket that does not answer the close is cut after the close grace. */
  closeClient(client: Client, code: number, reason: string): void {
    this.outbox.flush();
    client.ws.close(code, reason);
    setTimeout(() => client.ws.terminate(), TIMINGS.closeGraceMs).unref();
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

  /** Adds a WebSocket endpoint at its path. */
  addEndpoint(endpoint: Endpoint): void {
    if (endpoint.prefix) this.prefixed.push(endpoint);
    else this.endpoints.set(endpoint.path, endpoint);
  }

  /**
   * Serves `endpoint` over SSE too, at `path` (node/sse.ts): `GET path` streams, `POST path/{session}`
   * takes client frames, forwarded over the bus to the session's node from any other.
   */
  addSseTransport(endpoint: Endpoint, path: string): SseTransport {
    const sse = new SseTransport(
      {
        config: this.config,
        nodeId: this.id,
        logger: this.logger,
        gate: this.gate,
        topics: this.topics,
        adopt: (ep, session, req, identity, id) => this.sockets.adopt(ep, session, session, req, identity, id, 'sse', session.id),
        knownNode: (node) => this.calls.knownNodes().includes(node),
        rejected: (req, status, reason) => this.rejected(req, status, reason),
      },
      endpoint,
      path,
    );
    sse.start(this.router);
    this.addStopHook(async () => sse.stop());
    return sse;
  }

  endpoint(path: string): Endpoint | undefined {
    return this.endpointAt(path);
  }

  /** @internal The server asks whether a path is a WebSocket endpoint. */
  hasEndpoint(path: string): boolean {
    return this.endpointAt(path) !== undefined;
  }

  /** The endpoint at `path` exactly, else one with {@link Endpoint.prefix} whose path begins it (`/app/` serves `/app/{key}`). */
  private endpointAt(path: string): Endpoint | undefined {
    const exact = this.endpoints.get(path);
    if (exact || this.prefixed.length === 0) return exact;
    return this.prefixed.find((e) => path.startsWith(e.path) && path.length > e.path.length);
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
    this.topics.connect();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.config.port, this.config.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.sockets.startHeartbeat();
    this.setState('running');
    this.logger.info(
      { port: this.address.port, host: this.config.host, bus: this.bus.kind, tls: this.config.tls !== undefined },
      'node listening',
    );
  }

  /** @internal The server hands over a socket the gate admitted and `ws` upgraded. */
  accept(path: string, ws: WebSocket, req: IncomingMessage, identity: Identity, client: string): void {
    const endpoint = this.endpointAt(path);
    if (!endpoint) return void ws.terminate();
    this.sockets.accept(endpoint, ws, req, identity, client);
  }

  /** @internal A gate refusal, for logs and metrics. */
  rejected(req: IncomingMessage, status: number, reason: string): void {
    this.metrics.upgradeRefused(reason, status);
    this.logger.warn({ ip: this.gate.ipOf(req), origin: req.headers.origin, path: pathOf(req.url), status, reason }, 'upgrade refused');
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
   * `drainTimeout` seconds (so they do not all reconnect at once), then closes. A node with no
   * clients closes at once.
   */
  async drain(): Promise<void> {
    if (this.stateValue !== 'running') return this.close();
    this.setState('draining');
    const clients = this.sockets.list();
    if (clients.length === 0) {
      // Nobody to hand over: new upgrades are refused from now on (HAProxy retries them elsewhere).
      this.logger.info('draining: no clients, stopping at once');
      return this.close();
    }
    this.logger.info({ delay: this.config.drainDelay, timeout: this.config.drainTimeout, clients: clients.length }, 'draining');
    await sleep(this.config.drainDelay * 1000);
    const remaining = this.sockets.list();
    await closeSpread(remaining, CloseCode.GOING_AWAY, 'node draining', this.config.drainTimeout);
    this.logger.info({ clients: remaining.length }, 'drained: clients closed');
    await this.close();
  }

  /** Stops at once: closes clients with 1001, the endpoints, the bus and the server. Safe to call twice. */
  close(): Promise<void> {
    this.closing ??= this.doClose();
    return this.closing;
  }

  private async doClose(): Promise<void> {
    if (this.stateValue !== 'draining') this.setState('draining');
    this.sockets.stopHeartbeat();
    this.gate.stop();
    this.sockets.closeAll(CloseCode.GOING_AWAY, 'node shutting down');
    this.outbox.flush();
    // Hook calls in flight end now (unavailable), so stopping waits for no back end.
    this.hooks?.close();
    await this.calls.stop();
    for (const endpoint of [...this.endpoints.values(), ...this.prefixed]) await endpoint.stop?.().catch(() => {});
    for (const hook of this.stopHooks) await hook().catch(() => {});
    await this.topics.close().catch(() => {});
    const server = this.server;
    if (server) {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections?.();
        // Sockets that ignore the close frame are cut after a short grace.
        setTimeout(() => {
          this.sockets.terminateAll();
          server.closeAllConnections?.();
        }, TIMINGS.closeGraceMs).unref();
      });
    }
    this.wss?.close();
    this.setState('closed');
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
