/**
 * The families that measure a node's traffic over its brokers, counted by its topic routers
 * (node/topics.ts) and, for the messages a channel store puts on the broker itself, by the
 * channel service through the narrow face it declares (channels/service.ts): what this node
 * published and received by envelope kind, publish-to-write latency, failed bus operations,
 * errors nobody waits for, routes missing at the broker, and whether the bus is connected.
 *
 * Cost contract: {@link BusMetrics.published} and {@link BusMetrics.busMessageIn} run once per
 * message, so they only add to plain numbers indexed by envelope kind, handed to prom-client at
 * scrape time (the counters' `collect` hooks): no label hashing per message. Latency is observed
 * once per message that reached sockets, when the outbox flushed it ({@link DeliveryLatency} in
 * node/topics.ts), never once per delivery. Label values come from fixed sets (envelope kinds,
 * operations, sources).
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

/**
 * Where an error went that no caller waits for (`fanout_dropped_errors_total{source}`):
 * `subscribe` (a topic's subscribe at the broker, retried), `unsubscribe`.
 */
export type DroppedErrorSource = 'subscribe' | 'unsubscribe';

/** Seconds; publish-to-delivery latency is usually well under a millisecond on one host. */
const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** What a bus envelope kind is called in labels (src/protocol/envelope.ts EnvelopeKind). */
const KIND_NAMES = ['unknown', 'echo', 'channel', 'presence', 'control', 'cluster', 'sse'];

function kindName(kind: number): string {
  return KIND_NAMES[kind] ?? 'unknown';
}

export class BusMetrics {
  private readonly latency: Histogram;
  private readonly busErrors: Counter<'operation'>;
  private readonly busConnectedGauge: Gauge;
  private readonly droppedErrors: Counter<'source'>;
  private missingRoutes: () => number = () => 0;
  /** Per-message tallies by envelope kind, read by the counters' collect hooks at scrape time. */
  private readonly outByKind: number[] = [];
  private readonly busInByKind: number[] = [];

  constructor(registry: Registry) {
    const registers = [registry];
    const outByKind = this.outByKind;
    const busInByKind = this.busInByKind;
    new Counter({
      name: 'fanout_messages_out_total',
      help: 'Messages this node published to the other nodes over the bus, by kind.',
      labelNames: ['kind'],
      registers,
      collect() {
        this.reset();
        outByKind.forEach((n, kind) => this.inc({ kind: kindName(kind) }, n));
      },
    });
    new Counter({
      name: 'fanout_bus_messages_in_total',
      help: 'Messages received from other nodes over the bus, by kind.',
      labelNames: ['kind'],
      registers,
      collect() {
        this.reset();
        busInByKind.forEach((n, kind) => this.inc({ kind: kindName(kind) }, n));
      },
    });
    this.latency = new Histogram({
      name: 'fanout_publish_latency_seconds',
      help: 'From publish on the origin node to the write to this node\'s sockets, for messages that came over the bus (wall clocks: keep nodes NTP-synced).',
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.busErrors = new Counter({ name: 'fanout_bus_errors_total', help: 'Bus operations that failed (publish: the message was refused, never dropped silently).', labelNames: ['operation'], registers });
    this.busConnectedGauge = new Gauge({ name: 'fanout_bus_connected', help: '1 while the node is connected to its broker.', registers });
    this.droppedErrors = new Counter({
      name: 'fanout_dropped_errors_total',
      help: 'Bus and store errors that no caller waits for (logged at most every 10 s per kind), by source: subscribe (retried with backoff), unsubscribe.',
      labelNames: ['source'],
      registers,
    });
    const missing = (): number => this.missingRoutes();
    new Gauge({
      name: 'fanout_routes_missing',
      help: 'Topics this node needs that are not subscribed at the broker although it is connected (a failed subscribe being retried); /readyz answers 503 while it is above 0.',
      registers,
      collect() {
        this.set(missing());
      },
    });
    this.busConnectedGauge.set(0);
  }

  /** This node published a message of envelope `kind` on the bus (src/protocol/envelope.ts): a plain number, per message. */
  published(kind: number): void {
    this.outByKind[kind] = (this.outByKind[kind] ?? 0) + 1;
  }

  /** A message of envelope `kind` arrived from another node: a plain number, per message. */
  busMessageIn(kind: number): void {
    this.busInByKind[kind] = (this.busInByKind[kind] ?? 0) + 1;
  }

  /** Publish-to-delivery latency of one message, in milliseconds (negative values, from clock skew, count as 0). */
  publishLatency(ms: number): void {
    this.latency.observe(ms > 0 ? ms / 1000 : 0);
  }

  /** A bus operation failed; `operation` is `publish` (the default) or `subscribe`. */
  busError(operation: 'publish' | 'subscribe' = 'publish'): void {
    this.busErrors.labels(operation).inc();
  }

  /** An error from `source` (a fixed set) that no caller waits for was logged (rate-limited) and dropped. */
  droppedError(source: DroppedErrorSource): void {
    this.droppedErrors.labels(source).inc();
  }

  /** Where `fanout_routes_missing` reads, at scrape time, how many topics wait for a subscribe that failed. */
  routesMissing(count: () => number): void {
    this.missingRoutes = count;
  }

  /** The node's bus connected or disconnected. */
  busConnected(connected: boolean): void {
    this.busConnectedGauge.set(connected ? 1 : 0);
  }
}
