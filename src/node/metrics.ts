/**
 * The families that measure the node core itself (node/core.ts): whether it is ready, what its
 * outbox wrote to sockets (the broadcast path), and stored messages it could not deliver live.
 * Its sockets and its bus links have theirs beside them (node/socket-metrics.ts,
 * node/bus-metrics.ts).
 *
 * Cost contract: the broadcast path reports once per outbox flush ({@link NodeMetrics.flushed}),
 * never once per delivery, to unlabelled counters: three additions per flush whatever the number
 * of sockets. `fanout_ready` is read at scrape time.
 */
import { Counter, Gauge, type Registry } from 'prom-client';

/**
 * Why a message the store accepted was not delivered live (`fanout_undelivered_total{reason}`):
 * `message_head`, the bus payload of a stored message could not be built (Kafka, JetStream
 * history); `bus_publish`, the bus refused a message memory history stored (--history memory
 * over another bus).
 */
export type UndeliveredReason = 'message_head' | 'bus_publish';

export class NodeMetrics {
  private readonly deliveries: Counter;
  private readonly writes: Counter;
  private readonly bytesOut: Counter;
  private readonly undeliveredCounter: Counter<'reason'>;
  private isReady: () => boolean = () => false;

  constructor(registry: Registry) {
    const registers = [registry];
    const ready = (): boolean => this.isReady();
    new Gauge({
      name: 'fanout_ready',
      help: '1 while /readyz answers 200 (running and connected to the bus).',
      registers,
      collect() {
        this.set(ready() ? 1 : 0);
      },
    });
    this.deliveries = new Counter({ name: 'fanout_deliveries_total', help: 'Frames written to client sockets (one per message per socket).', registers });
    this.writes = new Counter({ name: 'fanout_socket_writes_total', help: 'Socket writes (all frames a socket gets in one event-loop turn go out as one write).', registers });
    this.bytesOut = new Counter({ name: 'fanout_bytes_out_total', help: 'Bytes written to client sockets, WebSocket framing included.', registers });
    this.undeliveredCounter = new Counter({
      name: 'fanout_undelivered_total',
      help: 'Messages the store accepted (in history, recoverable) that were not delivered live, by reason: message_head (the bus payload could not be built), bus_publish (the bus refused what memory history stored).',
      labelNames: ['reason'],
      registers,
    });
  }

  /** Where `fanout_ready` reads, at scrape time, whether /readyz answers 200. */
  readiness(ready: () => boolean): void {
    this.isReady = ready;
  }

  /** One outbox flush: `frames` frames written to `sockets` sockets in `bytes` bytes. Called once per flush, not per delivery. */
  flushed(frames: number, sockets: number, bytes: number): void {
    if (frames === 0) return;
    this.deliveries.inc(frames);
    this.writes.inc(sockets);
    this.bytesOut.inc(bytes);
  }

  /** A message the store accepted was not delivered live, for `reason` (a fixed set). */
  undelivered(reason: UndeliveredReason): void {
    this.undeliveredCounter.labels(reason).inc();
  }
}
