/**
 * A node's Prometheus metrics: one {@link Metrics} per node, owning its own prom-client Registry
 * (never the global default registry, so several in-process nodes in one test do not collide).
 * `GET /metrics` (src/http/metrics.ts) serves {@link Metrics.render}.
 *
 * Every family is named `fanout_…`; docs/operations.md lists them with what to alert on. One
 * piece past 400 lines for now: every family is declared in the one constructor, read as one
 * table (moving each feature's families beside the feature is issue 25's part 5, still open).
 *
 * Cost contract: the methods here are called from the node's paths, so they stay cheap. What is
 * counted per message (messages in, bus messages in and out) is added to plain numbers and handed
 * to prom-client only at scrape time (its `collect` hook), so no label hashing happens per
 * message; the broadcast path reports once per outbox flush ({@link Metrics.flushed}), never once
 * per delivery; other labelled children are looked up once and cached; and label values come from small fixed
 * sets (endpoint paths, close-code names, sanitised and capped rejection reasons), so a client
 * can never grow the number of series.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { CloseCode } from './errors.js';
import type { HookName, HookResult } from './hooks/hooks.js';
import type { WebhookEventName, WebhookResult } from './webhooks/webhooks.js';

/** What became of a Kafka ingest record (src/ingest): `fanout_ingest_records_total{result}`. */
export type IngestResult = 'published' | 'duplicate' | 'rejected' | 'failed';

/**
 * Why a message the store accepted was not delivered live (`fanout_undelivered_total{reason}`):
 * `message_head`, the bus payload of a stored message could not be built (Kafka, JetStream
 * history); `bus_publish`, the bus refused a message memory history stored (--history memory
 * over another bus).
 */
export type UndeliveredReason = 'message_head' | 'bus_publish';

/**
 * Where an error went that no caller waits for (`fanout_dropped_errors_total{source}`):
 * `subscribe` (a topic's subscribe at the broker, retried), `unsubscribe`.
 */
export type DroppedErrorSource = 'subscribe' | 'unsubscribe';

/** Seconds; publish-to-delivery latency is usually well under a millisecond on one host. */
const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** Seconds; a back-end hook answers in milliseconds when healthy, and --hook-timeout caps it at 60 s. */
const HOOK_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** Most channels the history gauges track; past it the least recently reported leaves them (with --history-ttl 0 too). */
export const MAX_HISTORY_CHANNELS = 65_536;

/** At most this many distinct rejection reasons are kept as label values; the rest count as `other`. */
const MAX_REASONS = 32;

/** Close code → `reason` label of `fanout_connections_closed_total`. */
const CLOSE_REASONS = new Map<number, string>([
  ...Object.entries(CloseCode).map(([name, code]) => [code, name.toLowerCase()] as [number, string]),
  [1005, 'no_status'],
  [1006, 'abnormal'],
]);

/** The label of a close code: the registry's name for it (`going_away`, `slow_consumer`, …), `no_status`, `abnormal` or `other`. */
export function closeReason(code: number): string {
  return CLOSE_REASONS.get(code) ?? 'other';
}

/** What a bus envelope kind is called in labels (src/protocol/envelope.ts EnvelopeKind). */
const KIND_NAMES = ['unknown', 'echo', 'channel', 'presence', 'control'];

function kindName(kind: number): string {
  return KIND_NAMES[kind] ?? 'unknown';
}

export interface MetricsOptions {
  /** The node id, exported as `fanout_node_info{node}`. */
  readonly node: string;
  /** How long a channel's history lives after its last message (--history-ttl), in ms; 0 for ever. Entries not refreshed for that long leave the history totals. */
  readonly historyTtlMs?: number;
  /** Also export process metrics (CPU, memory, file descriptors, event-loop lag, GC) as `fanout_process_…`/`fanout_nodejs_…`. Off for in-process test nodes. */
  readonly processMetrics?: boolean;
}

/** Live values read at scrape time. */
export interface MetricsSources {
  /** 1 while /readyz answers 200. */
  readonly ready: () => boolean;
}

export class Metrics {
  /** This node's registry. */
  readonly registry = new Registry();

  private readonly connections: Gauge<'endpoint'>;
  private readonly opened: Counter<'endpoint'>;
  private readonly closed: Counter<'endpoint' | 'reason'>;
  private readonly deliveries: Counter;
  private readonly writes: Counter;
  private readonly bytesOut: Counter;
  private readonly latency: Histogram;
  private readonly busErrors: Counter<'operation'>;
  private readonly busConnectedGauge: Gauge;
  private readonly slowConsumers: Counter<'endpoint'>;
  private readonly rateLimitedCounter: Counter<'endpoint' | 'action'>;
  private readonly rejections: Counter<'reason' | 'status'>;
  private readonly historyChannels: Gauge;
  private readonly historyMessages: Gauge;
  private readonly historyEvictions: Counter;
  private readonly hookRequests: Counter<'hook' | 'result'>;
  private readonly hookLatency: Histogram<'hook'>;
  private readonly webhookEventsCounter: Counter<'name' | 'result'>;
  private webhookDepth: () => number = () => 0;
  private readonly ingestRecordsCounter: Counter<'result'>;
  private readonly undeliveredCounter: Counter<'reason'>;
  private readonly droppedErrorsCounter: Counter<'source'>;
  private missingRoutes: () => number = () => 0;

  private readonly reasons = new Set<string>();
  /** Channel → [messages, when last reported], least recently reported first. */
  private readonly history = new Map<string, [number, number]>();
  private historyTotal = 0;
  private readonly historyTtlMs: number;
  private readonly byEndpoint = new Map<string, EndpointChildren>();
  /** Per-message tallies, read by the counters' collect hooks at scrape time. */
  private readonly inByEndpoint = new Map<string, { messages: number; bytes: number }>();
  private readonly outByKind: number[] = [];
  private readonly busInByKind: number[] = [];

  constructor(options: MetricsOptions) {
    this.historyTtlMs = options.historyTtlMs ?? 0;
    const registers = [this.registry];
    if (options.processMetrics) collectDefaultMetrics({ register: this.registry, prefix: 'fanout_' });

    new Gauge({ name: 'fanout_node_info', help: 'Always 1; the node id as a label.', labelNames: ['node'], registers }).set({ node: options.node }, 1);
    this.connections = new Gauge({ name: 'fanout_connections', help: 'Open WebSocket connections, by endpoint.', labelNames: ['endpoint'], registers });
    this.opened = new Counter({ name: 'fanout_connections_opened_total', help: 'WebSocket connections accepted, by endpoint.', labelNames: ['endpoint'], registers });
    this.closed = new Counter({
      name: 'fanout_connections_closed_total',
      help: 'WebSocket connections closed, by endpoint and close reason (the close code\'s name in docs/errors.md; abnormal = no close frame).',
      labelNames: ['endpoint', 'reason'],
      registers,
    });
    const inByEndpoint = this.inByEndpoint;
    const outByKind = this.outByKind;
    const busInByKind = this.busInByKind;
    new Counter({
      name: 'fanout_messages_in_total',
      help: 'Messages received from clients, by endpoint.',
      labelNames: ['endpoint'],
      registers,
      collect() {
        this.reset();
        for (const [endpoint, c] of inByEndpoint) this.inc({ endpoint }, c.messages);
      },
    });
    new Counter({
      name: 'fanout_bytes_in_total',
      help: 'Payload bytes of the messages received from clients, by endpoint.',
      labelNames: ['endpoint'],
      registers,
      collect() {
        this.reset();
        for (const [endpoint, c] of inByEndpoint) this.inc({ endpoint }, c.bytes);
      },
    });
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
    this.deliveries = new Counter({ name: 'fanout_deliveries_total', help: 'Frames written to client sockets (one per message per socket).', registers });
    this.writes = new Counter({ name: 'fanout_socket_writes_total', help: 'Socket writes (all frames a socket gets in one event-loop turn go out as one write).', registers });
    this.bytesOut = new Counter({ name: 'fanout_bytes_out_total', help: 'Bytes written to client sockets, WebSocket framing included.', registers });
    this.latency = new Histogram({
      name: 'fanout_publish_latency_seconds',
      help: 'From publish on the origin node to the write to this node\'s sockets, for messages that came over the bus (wall clocks: keep nodes NTP-synced).',
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.busErrors = new Counter({ name: 'fanout_bus_errors_total', help: 'Bus operations that failed (publish: the message was refused, never dropped silently).', labelNames: ['operation'], registers });
    this.busConnectedGauge = new Gauge({ name: 'fanout_bus_connected', help: '1 while the node is connected to its broker.', registers });
    this.slowConsumers = new Counter({ name: 'fanout_slow_consumer_closes_total', help: 'Sockets closed (4508) because their unsent bytes passed --max-buffered.', labelNames: ['endpoint'], registers });
    this.rateLimitedCounter = new Counter({
      name: 'fanout_rate_limited_total',
      help: 'Messages over --rate-limit: action=refused (dropped, answered with an error frame) or closed (the socket was closed).',
      labelNames: ['endpoint', 'action'],
      registers,
    });
    this.rejections = new Counter({ name: 'fanout_handshake_rejections_total', help: 'WebSocket upgrades refused before the 101, by reason and HTTP status.', labelNames: ['reason', 'status'], registers });
    this.historyChannels = new Gauge({ name: 'fanout_history_channels', help: 'Channels with history, as this node last saw them.', registers });
    this.historyMessages = new Gauge({ name: 'fanout_history_messages', help: 'Messages kept in channel history, summed over channels, as this node last saw them.', registers });
    this.historyEvictions = new Counter({ name: 'fanout_history_evictions_total', help: 'Channels whose whole history the memory store or the Kafka index evicted to stay within --history-max-bytes.', registers });
    this.hookRequests = new Counter({
      name: 'fanout_hook_requests_total',
      help: 'Back-end hook calls (docs/hooks.md), by hook and result: allowed (200), refused (401/403), error (another status or a bad answer), timeout, network_error, overloaded (not sent: the node\'s or the address\'s share of --hook-concurrency), abandoned (the client went away; the request was aborted).',
      labelNames: ['hook', 'result'],
      registers,
    });
    this.hookLatency = new Histogram({
      name: 'fanout_hook_latency_seconds',
      help: 'Duration of the back-end hook calls that were sent, by hook, from the request to the whole answer (or the failure).',
      labelNames: ['hook'],
      buckets: HOOK_BUCKETS,
      registers,
    });
    this.webhookEventsCounter = new Counter({
      name: 'fanout_webhook_events_total',
      help: 'Webhook events (docs/hooks.md#webhooks), by name and result: delivered (2xx), retried (in a failed batch sent again), dropped (past --webhook-retry, or left when the node stopped), rejected (another status), overflow (the queue was full).',
      labelNames: ['name', 'result'],
      registers: [this.registry],
    });
    this.ingestRecordsCounter = new Counter({
      name: 'fanout_ingest_records_total',
      help: 'Kafka ingest records (--kafka-ingest, docs/brokers.md#kafka-ingest), by result: published (into their channel), duplicate (published before, by this or another node, not again), rejected (no key, a bad channel name, not UTF-8, not JSON, over --max-payload: skipped), failed (the bus or the store was unavailable: retried, not skipped).',
      labelNames: ['result'],
      registers: [this.registry],
    });
    this.undeliveredCounter = new Counter({
      name: 'fanout_undelivered_total',
      help: 'Messages the store accepted (in history, recoverable) that were not delivered live, by reason: message_head (the bus payload could not be built), bus_publish (the bus refused what memory history stored).',
      labelNames: ['reason'],
      registers: [this.registry],
    });
    this.droppedErrorsCounter = new Counter({
      name: 'fanout_dropped_errors_total',
      help: 'Bus and store errors that no caller waits for (logged at most every 10 s per kind), by source: subscribe (retried with backoff), unsubscribe.',
      labelNames: ['source'],
      registers: [this.registry],
    });
    const missing = (): number => this.missingRoutes();
    new Gauge({
      name: 'fanout_routes_missing',
      help: 'Topics this node needs that are not subscribed at the broker although it is connected (a failed subscribe being retried); /readyz answers 503 while it is above 0.',
      registers: [this.registry],
      collect() {
        this.set(missing());
      },
    });
    const depth = (): number => this.webhookDepth();
    new Gauge({
      name: 'fanout_webhook_queue_depth',
      help: 'Webhook events waiting for the back end (the batch being sent included); the queue holds at most 10000.',
      registers: [this.registry],
      collect() {
        this.set(depth());
      },
    });
    this.busConnectedGauge.set(0);
  }

  /** Registers live values read at every scrape (`fanout_ready`). */
  sources(sources: MetricsSources): void {
    new Gauge({
      name: 'fanout_ready',
      help: '1 while /readyz answers 200 (running and connected to the bus).',
      registers: [this.registry],
      collect() {
        this.set(sources.ready() ? 1 : 0);
      },
    });
  }

  /** The exposition text and its content type, for `GET /metrics`. */
  async render(): Promise<{ contentType: string; body: string }> {
    this.trimHistory(Date.now());
    this.historyChannels.set(this.history.size);
    this.historyMessages.set(this.historyTotal);
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }

  private endpoint(endpoint: string): EndpointChildren {
    let children = this.byEndpoint.get(endpoint);
    if (!children) {
      children = {
        connections: this.connections.labels(endpoint),
        opened: this.opened.labels(endpoint),
      };
      this.byEndpoint.set(endpoint, children);
    }
    return children;
  }

  // ------------------------------------------------------------ connections

  /** A WebSocket on `endpoint` (its path, e.g. `/ws/echo`) was accepted. */
  connectionOpened(endpoint: string): void {
    const c = this.endpoint(endpoint);
    c.connections.inc();
    c.opened.inc();
  }

  /** A WebSocket on `endpoint` closed with `code` (the code received or sent; 1006 when the socket just dropped). */
  connectionClosed(endpoint: string, code: number): void {
    this.endpoint(endpoint).connections.dec();
    this.closed.labels(endpoint, closeReason(code)).inc();
  }

  /**
   * An upgrade was refused with HTTP `status` before the 101. `reason` should be a short stable
   * word (`origin`, `token_invalid`, `max_connections`, …): it is lower-cased, reduced to
   * `[a-z0-9_]`, cut to 40 characters, and past 32 distinct reasons counted as `other`.
   */
  rejected(reason: string, status: number): void {
    let label = reason
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, '_')
      .replace(/^_|_$/g, '')
      .slice(0, 40) || 'other';
    if (!this.reasons.has(label)) {
      if (this.reasons.size >= MAX_REASONS) label = 'other';
      else this.reasons.add(label);
    }
    this.rejections.labels(label, String(status)).inc();
  }

  /** A socket on `endpoint` was closed as a slow consumer (its unsent bytes passed --max-buffered). */
  slowConsumer(endpoint: string): void {
    this.slowConsumers.labels(endpoint).inc();
  }

  /** A message on `endpoint` went over --rate-limit: `closed` when the socket was closed for it, otherwise it was refused with an error frame. */
  rateLimited(endpoint: string, closed = false): void {
    this.rateLimitedCounter.labels(endpoint, closed ? 'closed' : 'refused').inc();
  }

  // ------------------------------------------------------------ messages

  /** A client sent a message of `bytes` bytes on `endpoint`. */
  messageIn(endpoint: string, bytes: number): void {
    let c = this.inByEndpoint.get(endpoint);
    if (!c) this.inByEndpoint.set(endpoint, (c = { messages: 0, bytes: 0 }));
    c.messages++;
    c.bytes += bytes;
  }

  /** This node published a message of envelope `kind` on the bus (src/protocol/envelope.ts). */
  published(kind: number): void {
    this.outByKind[kind] = (this.outByKind[kind] ?? 0) + 1;
  }

  /** A message of envelope `kind` arrived from another node. */
  busMessageIn(kind: number): void {
    this.busInByKind[kind] = (this.busInByKind[kind] ?? 0) + 1;
  }

  /** One outbox flush: `frames` frames written to `sockets` sockets in `bytes` bytes. Called once per flush, not per delivery. */
  flushed(frames: number, sockets: number, bytes: number): void {
    if (frames === 0) return;
    this.deliveries.inc(frames);
    this.writes.inc(sockets);
    this.bytesOut.inc(bytes);
  }

  /** Publish-to-delivery latency of one message, in milliseconds (negative values, from clock skew, count as 0). */
  publishLatency(ms: number): void {
    this.latency.observe(ms > 0 ? ms / 1000 : 0);
  }

  // ------------------------------------------------------------ hooks

  /** `count` webhook events named `name` ended an attempt with `result`. Label values come from fixed sets. */
  webhookEvents(name: WebhookEventName, result: WebhookResult, count: number): void {
    this.webhookEventsCounter.labels(name, result).inc(count);
  }

  /** Where `fanout_webhook_queue_depth` reads the queue's depth at scrape time. */
  webhookQueue(depth: () => number): void {
    this.webhookDepth = depth;
  }

  /** A Kafka ingest record was handled with `result` (one of a fixed set). */
  ingestRecord(result: IngestResult): void {
    this.ingestRecordsCounter.labels(result).inc();
  }

  /** A back-end hook call ended with `result`; `seconds` is its duration when it was sent. Label values come from fixed sets. */
  hookRequest(hook: HookName, result: HookResult, seconds: number | undefined): void {
    this.hookRequests.labels(hook, result).inc();
    if (seconds !== undefined) this.hookLatency.labels(hook).observe(seconds);
  }

  // ------------------------------------------------------------ bus and history

  /** A bus operation failed; `operation` is `publish` (the default) or `subscribe`. */
  busError(operation: 'publish' | 'subscribe' = 'publish'): void {
    this.busErrors.labels(operation).inc();
  }

  /** A message the store accepted was not delivered live, for `reason` (a fixed set). */
  undelivered(reason: UndeliveredReason): void {
    this.undeliveredCounter.labels(reason).inc();
  }

  /** An error from `source` (a fixed set) that no caller waits for was logged (rate-limited) and dropped. */
  droppedError(source: DroppedErrorSource): void {
    this.droppedErrorsCounter.labels(source).inc();
  }

  /** Where `fanout_routes_missing` reads, at scrape time, how many topics wait for a subscribe that failed. */
  routesMissing(count: () => number): void {
    this.missingRoutes = count;
  }

  /** The bus connected or disconnected. */
  busConnected(connected: boolean): void {
    this.busConnectedGauge.set(connected ? 1 : 0);
  }

  /**
   * The history of `channel` now holds `n` messages (0 when it expired or was dropped). Exported
   * as totals (`fanout_history_channels`, `fanout_history_messages`), never per channel, so the
   * number of series does not grow with the number of channels. A channel not reported again
   * within `historyTtlMs` is taken as expired, and at most {@link MAX_HISTORY_CHANNELS} are
   * tracked. The channel service reports after each publish, the memory store when it drops one.
   */
  historySize(channel: string, n: number): void {
    const before = this.history.get(channel)?.[0] ?? 0;
    // Moved to the end: the map stays ordered by report time, so what leaves leaves from the front.
    this.history.delete(channel);
    const now = Date.now();
    if (n > 0) this.history.set(channel, [n, now]);
    this.historyTotal += Math.max(0, n) - before;
    this.trimHistory(now);
  }

  /** The memory store evicted a channel's history for --history-max-bytes. */
  historyEvicted(): void {
    this.historyEvictions.inc();
  }

  /** Drops, from the front, entries past their TTL and past {@link MAX_HISTORY_CHANNELS}: only what leaves is visited. */
  private trimHistory(now: number): void {
    const expired = this.historyTtlMs > 0 ? now - this.historyTtlMs : -Infinity;
    for (const [channel, [n, at]] of this.history) {
      if (at >= expired && this.history.size <= MAX_HISTORY_CHANNELS) return;
      this.history.delete(channel);
      this.historyTotal -= n;
    }
  }
}

interface EndpointChildren {
  readonly connections: Gauge.Internal<'endpoint'>;
  readonly opened: Counter.Internal;
}
