/**
 * The families that measure the node's local sockets (node/sockets.ts): connections by endpoint,
 * what clients send, and the sockets closed or refused for their behaviour.
 *
 * Cost contract: {@link SocketMetrics.messageIn} runs once per client message, so it only adds to
 * plain numbers, handed to prom-client at scrape time (the counters' `collect` hooks): no label
 * hashing per message. The per-connection calls use labelled children looked up once per
 * endpoint and cached. Label values come from small fixed sets (the endpoint paths the node
 * registered, the close codes' names), so a client can never grow the number of series.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import { CloseCode } from '../errors.js';

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

interface EndpointChildren {
  readonly connections: Gauge.Internal<'endpoint' | 'transport'>;
  readonly opened: Counter.Internal;
}

export class SocketMetrics {
  private readonly connections: Gauge<'endpoint' | 'transport'>;
  private readonly opened: Counter<'endpoint' | 'transport'>;
  private readonly closed: Counter<'endpoint' | 'reason' | 'transport'>;
  private readonly slowConsumers: Counter<'endpoint'>;
  private readonly rateLimitedCounter: Counter<'endpoint' | 'action'>;
  private readonly byEndpoint = new Map<string, EndpointChildren>();
  /** Per-message tallies, read by the counters' collect hooks at scrape time. */
  private readonly inByEndpoint = new Map<string, { messages: number; bytes: number }>();

  constructor(registry: Registry) {
    const registers = [registry];
    this.connections = new Gauge({ name: 'fanout_connections', help: 'Open connections, by endpoint and transport (websocket, sse).', labelNames: ['endpoint', 'transport'], registers });
    this.opened = new Counter({ name: 'fanout_connections_opened_total', help: 'Connections accepted, by endpoint and transport (websocket, sse).', labelNames: ['endpoint', 'transport'], registers });
    this.closed = new Counter({
      name: 'fanout_connections_closed_total',
      help: 'Connections closed, by endpoint, transport (websocket, sse) and close reason (the close code\'s name in docs/errors.md; abnormal = no close frame).',
      labelNames: ['endpoint', 'reason', 'transport'],
      registers,
    });
    const inByEndpoint = this.inByEndpoint;
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
    this.slowConsumers = new Counter({ name: 'fanout_slow_consumer_closes_total', help: 'Sockets closed (4508) because their unsent bytes passed --max-buffered.', labelNames: ['endpoint'], registers });
    this.rateLimitedCounter = new Counter({
      name: 'fanout_rate_limited_total',
      help: 'Messages over --rate-limit: action=refused (dropped, answered with an error frame) or closed (the socket was closed).',
      labelNames: ['endpoint', 'action'],
      registers,
    });
  }

  private endpoint(endpoint: string, transport: string): EndpointChildren {
    const key = `${transport} ${endpoint}`;
    let children = this.byEndpoint.get(key);
    if (!children) {
      children = { connections: this.connections.labels(endpoint, transport), opened: this.opened.labels(endpoint, transport) };
      this.byEndpoint.set(key, children);
    }
    return children;
  }

  /** A connection on `endpoint` (its path, e.g. `/ws/echo`) was accepted, over `transport`. */
  connectionOpened(endpoint: string, transport = 'websocket'): void {
    const c = this.endpoint(endpoint, transport);
    c.connections.inc();
    c.opened.inc();
  }

  /** A connection on `endpoint` closed with `code` (the code received or sent; 1006 when the socket just dropped). */
  connectionClosed(endpoint: string, code: number, transport = 'websocket'): void {
    this.endpoint(endpoint, transport).connections.dec();
    this.closed.labels(endpoint, closeReason(code), transport).inc();
  }

  /** A client sent a message of `bytes` bytes on `endpoint`: plain numbers, per message. */
  messageIn(endpoint: string, bytes: number): void {
    let c = this.inByEndpoint.get(endpoint);
    if (!c) this.inByEndpoint.set(endpoint, (c = { messages: 0, bytes: 0 }));
    c.messages++;
    c.bytes += bytes;
  }

  /** A socket on `endpoint` was closed as a slow consumer (its unsent bytes passed --max-buffered). */
  slowConsumer(endpoint: string): void {
    this.slowConsumers.labels(endpoint).inc();
  }

  /** A message on `endpoint` went over --rate-limit: `closed` when the socket was closed for it, otherwise it was refused with an error frame. */
  rateLimited(endpoint: string, closed = false): void {
    this.rateLimitedCounter.labels(endpoint, closed ? 'closed' : 'refused').inc();
  }
}
