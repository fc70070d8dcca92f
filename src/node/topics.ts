/**
 * The one route a message takes across a broker: every bus link of a node (its `--bus`, and a
 * separate `--history` Redis when channel traffic rides that one) is a {@link TopicRouter}.
 *
 * It owns, once for every feature (echo, channels, presence, control):
 * - the topic map, and resubscribing every topic after the broker reconnects; a subscribe that
 *   fails while the broker stays connected is retried with backoff (100 ms doubling to
 *   TIMINGS.resubscribeMaxMs) until it succeeds, and {@link TopicRouter.missingRoutes} counts the
 *   topics meanwhile (the node's /readyz answers 503 while any route is missing);
 * - the origin filter: a topic subscribed with `own: 'drop'` (echo, delivered locally first)
 *   never sees this node's own messages; `own: 'deliver'` topics (channels, whose order is set
 *   by the store and which every node delivers from the bus) do;
 * - envelope decoding, and a guard around every handler;
 * - the metrics (node/bus-metrics.ts): `fanout_messages_out_total{kind}` for whatever this node puts on the broker
 *   through {@link TopicRouter.publish} (a channel store that publishes itself counts its own, in
 *   the channel service), `fanout_bus_messages_in_total{kind}` for what other nodes sent, and the publish-to-write
 *   latency of messages that reached sockets ({@link DeliveryLatency}).
 *
 * Features differ in what they do before publishing and after delivery, not in how bytes travel.
 */
import type { Bus, BusStatus } from '../stores/bus.js';
import { TIMINGS } from '../config/defaults.js';
import { BusUnavailableError, ConfigError, errorMessage } from '../errors.js';
import type { Logger } from '../logger.js';
import type { BusMetrics } from './bus-metrics.js';
import { QuietLog } from './quiet-log.js';
import { decodeEnvelope, encodeEnvelope, isFromOrigin, preciseNow, type EnvelopeKind } from '../protocol/envelope.js';

/** Handles the body of a bus message on a topic. */
export type TopicHandler = (kind: number, body: Buffer, origin: string) => void;

/** What a topic does with this node's own messages when the broker hands them back. */
export type OwnMessages = 'drop' | 'deliver';

/** A route's view of the broker, as features use it (channels take one of these, not the node). */
export interface Topics {
  /** True while messages can be published and received. */
  readonly connected: boolean;
  /** Routes the topic's messages to `handler`; kept across reconnects. */
  subscribeTopic(topic: string, handler: TopicHandler, own: OwnMessages): void;
  unsubscribeTopic(topic: string): void;
  /** Resolves once the topic is live at the broker (idempotent). */
  subscribe(topic: string): Promise<void>;
  /** Publishes `body` in an envelope from this node. Rejects with BusUnavailableError. */
  publish(topic: string, kind: EnvelopeKind, body: Buffer): Promise<void>;
  /** Called on every status change, after the topics were resubscribed. */
  onStatus(listener: (status: BusStatus) => void): void;
}

/**
 * Publish times of bus messages that reached sockets in this event-loop turn, observed when the
 * outbox writes them (shared by every route of a node, fed by the outbox's flush).
 */
export class DeliveryLatency {
  private stamps: number[] = [];

  constructor(private readonly metrics: Pick<BusMetrics, 'publishLatency'>) {}

  /** A message published at `publishedAt` was queued for at least one socket. */
  mark(publishedAt: number): void {
    this.stamps.push(publishedAt);
  }

  /** The outbox wrote what was queued: every marked message is delivered now. */
  flushed(): void {
    if (this.stamps.length === 0) return;
    const now = preciseNow();
    for (const at of this.stamps) this.metrics.publishLatency(now - at);
    this.stamps = [];
  }
}

export interface TopicRouterOptions {
  readonly bus: Bus;
  /** This node's id: the origin of what it publishes. */
  readonly nodeId: string;
  /** What this link is called in logs (`bus`, `history redis`). */
  readonly name: string;
  readonly logger: Logger;
  /** The families of node/bus-metrics.ts, shared by every route of the node. */
  readonly metrics: BusMetrics;
  readonly latency: DeliveryLatency;
  /** Frames queued in the outbox since its last flush: tells whether a handler delivered anything. */
  readonly pending: () => number;
  /** The broker refused the configuration itself (wrong credentials): retrying cannot heal it. */
  readonly fatal: (err: ConfigError) => void;
}

interface Route {
  readonly handler: TopicHandler;
  readonly dropOwn: boolean;
}

export class TopicRouter implements Topics {
  readonly bus: Bus;
  private readonly routes = new Map<string, Route>();
  private readonly listeners: Array<(status: BusStatus) => void> = [];
  private readonly idBytes: Buffer;
  private lastPublishError = 0;
  /** Topics with a route that are not subscribed at the broker since it last connected. */
  private readonly missing = new Set<string>();
  /** Subscribes in flight on the current connection. */
  private readonly inFlight = new Set<string>();
  /** Counts `connected` changes: the answer to a subscribe asked before the latest one says nothing about now. */
  private generation = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private retryAttempt = 0;
  private readonly quiet: QuietLog;

  constructor(private readonly options: TopicRouterOptions) {
    this.bus = options.bus;
    this.quiet = new QuietLog(options.logger, TIMINGS.unnoticedLogMs);
    this.idBytes = Buffer.from(options.nodeId, 'latin1');
    this.bus.onMessage((topic, payload) => this.fromBus(topic, payload));
    this.bus.onStatus((status, cause) => this.statusChanged(status, cause));
  }

  get connected(): boolean {
    return this.bus.connected;
  }

  /** Topics routed here that the connected broker has not subscribed (a failed subscribe, retried); 0 while disconnected. */
  get missingRoutes(): number {
    return this.bus.connected ? this.missing.size : 0;
  }

  /** Starts connecting without waiting; the broker's absence is logged and /readyz says 503 meanwhile. */
  connect(): void {
    this.bus.connect().catch((err: unknown) => {
      if (err instanceof ConfigError) return this.options.fatal(err);
      this.options.logger.warn({ err: errorMessage(err), bus: this.bus.kind }, `${this.options.name} not reachable yet; retrying, /readyz says 503 until then`);
    });
  }

  subscribeTopic(topic: string, handler: TopicHandler, own: OwnMessages): void {
    const had = this.routes.has(topic);
    this.routes.set(topic, { handler, dropOwn: own === 'drop' });
    if (had) return;
    this.missing.add(topic);
    if (this.bus.connected) this.busSubscribe(topic);
  }

  unsubscribeTopic(topic: string): void {
    if (!this.routes.delete(topic)) return;
    this.missing.delete(topic);
    this.bus.unsubscribe(topic).catch((err: unknown) => {
      // Nothing waits for it: at worst the broker sends this node a topic it no longer routes (dropped in fromBus).
      this.options.metrics.droppedError('unsubscribe');
      this.quiet.warn('unsubscribe', { err: errorMessage(err), bus: this.bus.kind }, `${this.options.name} unsubscribe failed`);
    });
  }

  subscribe(topic: string): Promise<void> {
    return this.bus.subscribe(topic);
  }

  async publish(topic: string, kind: EnvelopeKind, body: Buffer): Promise<void> {
    try {
      await this.bus.publish(topic, encodeEnvelope(kind, this.options.nodeId, body));
      this.options.metrics.published(kind);
    } catch (err) {
      this.options.metrics.busError('publish');
      const now = Date.now();
      if (now - this.lastPublishError > TIMINGS.publishErrorLogMs) {
        this.lastPublishError = now;
        this.options.logger.warn({ err: errorMessage(err), bus: this.bus.kind }, `${this.options.name} publish failed (logged at most every 10 s)`);
      }
      throw err instanceof BusUnavailableError ? err : new BusUnavailableError(errorMessage(err), { cause: err });
    }
  }

  onStatus(listener: (status: BusStatus) => void): void {
    this.listeners.push(listener);
  }

  close(): Promise<void> {
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    return this.bus.close();
  }

  /** Subscribes a routed topic at the broker; a failure leaves it in {@link missing} and is retried. */
  private busSubscribe(topic: string): void {
    if (this.inFlight.has(topic)) return;
    const generation = this.generation;
    this.inFlight.add(topic);
    this.bus.subscribe(topic).then(
      () => {
        if (generation !== this.generation) return;
        this.inFlight.delete(topic);
        this.missing.delete(topic);
        if (this.missing.size === 0) this.retryAttempt = 0;
      },
      (err: unknown) => {
        if (generation !== this.generation) return;
        this.inFlight.delete(topic);
        this.options.metrics.busError('subscribe');
        this.options.metrics.droppedError('subscribe');
        if (!this.routes.has(topic)) return;
        // Disconnected: the next `connected` subscribes every topic again. Connected: retried here, or the route stays quiet.
        if (!this.bus.connected) return;
        this.quiet.warn('subscribe', { err: errorMessage(err), bus: this.bus.kind, topic, missing: this.missing.size }, `${this.options.name} subscribe failed; retrying, /readyz says 503 until every route is back`);
        this.scheduleRetry();
      },
    );
  }

  /** One timer for every topic waiting: a broker that refuses thousands of subscribes costs one retry round per delay. */
  private scheduleRetry(): void {
    if (this.retryTimer) return;
    const delay = Math.min(100 * 2 ** Math.min(this.retryAttempt++, 10), TIMINGS.resubscribeMaxMs);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      if (!this.bus.connected) return;
      for (const topic of this.missing) this.busSubscribe(topic);
    }, delay);
    this.retryTimer.unref();
  }

  private fromBus(topic: string, payload: Buffer): void {
    const route = this.routes.get(topic);
    if (!route) return;
    const own = isFromOrigin(payload, this.idBytes);
    if (own && route.dropOwn) return;
    const envelope = decodeEnvelope(payload);
    if (!envelope) {
      this.options.logger.debug({ topic }, 'dropped a bus message that is not a Fanout envelope');
      return;
    }
    if (!own) this.options.metrics.busMessageIn(envelope.kind);
    const queued = this.options.pending();
    try {
      route.handler(envelope.kind, envelope.body, envelope.origin);
    } catch (err) {
      this.options.logger.error({ err, topic }, 'bus message handler failed');
    }
    // Latency is measured for messages that reached sockets, at the write.
    if (this.options.pending() > queued) this.options.latency.mark(envelope.publishedAt);
  }

  private statusChanged(status: BusStatus, cause?: Error): void {
    const { logger, name } = this.options;
    if (status === 'connected') {
      logger.info({ bus: this.bus.kind, topics: this.routes.size }, `${name} connected`);
      this.generation++;
      this.inFlight.clear();
      clearTimeout(this.retryTimer);
      this.retryTimer = undefined;
      this.retryAttempt = 0;
      for (const topic of this.routes.keys()) this.missing.add(topic);
      for (const topic of this.routes.keys()) this.busSubscribe(topic);
    } else if (status === 'disconnected') {
      logger.warn({ bus: this.bus.kind, err: cause?.message }, `${name} disconnected; retrying`);
    }
    for (const listener of this.listeners) listener(status);
  }
}
