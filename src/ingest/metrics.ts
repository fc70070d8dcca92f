/**
 * The family that measures --kafka-ingest (ingest/kafka-ingest.ts, docs/brokers.md#kafka-ingest):
 * what became of each record.
 *
 * Cost contract: one count per record, which already costs a publish through the channel store;
 * the label values are the fixed set {@link IngestResult}.
 */
import { Counter, type Registry } from 'prom-client';
import type { IngestResult } from './kafka-ingest.js';

export class IngestMetrics {
  private readonly records: Counter<'result'>;

  constructor(registry: Registry) {
    this.records = new Counter({
      name: 'fanout_ingest_records_total',
      help: 'Kafka ingest records (--kafka-ingest, docs/brokers.md#kafka-ingest), by result: published (into their channel), duplicate (published before, by this or another node, not again), rejected (no key, a bad channel name, not UTF-8, not JSON, over --max-payload: skipped), failed (the bus or the store was unavailable: retried, not skipped).',
      labelNames: ['result'],
      registers: [registry],
    });
  }

  /** A record was handled with `result`. */
  record(result: IngestResult): void {
    this.records.labels(result).inc();
  }
}
