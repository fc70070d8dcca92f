/**
 * `--kafka-ingest TOPIC`: records a back end writes to a Kafka topic, keyed by channel with a JSON
 * value, published into their channels exactly as `POST /api/publish` does (same checks, same
 * offsets, history and delivery: the channel service's publish).
 *
 * Once per cluster: every node joins one consumer group (--kafka-ingest-group), so Kafka gives each
 * partition to one node. Nothing is committed before it is published: a record's offset is
 * committed only after its publish resolved (or it was refused for good), so a node that stops or
 * crashes loses nothing. What it published but had not committed yet is handed over again (to
 * the next owner of the partition); the store refuses it, because every publish carries its
 * (topic, partition, offset) and the store keeps, per channel, the last one it published from each
 * partition, checked and moved in the same atomic step as the publish (stores/store.ts,
 * `OutgoingMessage.once`). So the channel gets each record once, in partition order.
 *
 * Order and bounds: one record at a time per node, in the order the stream gives them (a
 * partition's records in offset order); while a publish fails because the bus or the store is
 * unavailable, the same record is tried again with backoff (src/stores/retry.ts), never skipped and
 * never committed meanwhile. The stream holds at most {@link MAX_BUFFERED} records ahead of the
 * one being published; past that it stops fetching (the stream's backpressure).
 *
 * Readiness does not depend on the ingest: a topic that cannot be read is one warn line (and
 * a retry with backoff), then debug lines until it can. A record skipped for good (no key, not
 * JSON, a bad channel name…) is a warn line naming its topic, partition, offset and why, at most
 * one per TIMINGS.unnoticedLogMs (the line counts those not logged; the metric counts all).
 */
import { isUtf8 } from 'node:buffer';
import type { Consumer, Message, MessagesStream } from '@platformatic/kafka';
import { CLIENT_TIMINGS, FETCH_MAX_WAIT_MS, GROUP_TIMINGS, STABLE_SESSION_MS } from '../brokers/kafka/session.js';
import { forceClose, kafkaErrorMessage, loadKafkaClient } from '../brokers/kafka/client.js';
import { QuietLog } from '../node/quiet-log.js';
import { busRetryDelay, Sleeper } from '../stores/retry.js';
import { isRefusal, parseJsonInput, publishInput } from '../channels/index.js';
import { TIMINGS, type KafkaIngestTarget } from '../config/schema.js';
import { BusUnavailableError, errorMessage } from '../errors.js';
import type { Logger } from '../logger.js';

/** What became of a record (`fanout_ingest_records_total{result}`, ingest/metrics.ts). */
export type IngestResult = 'published' | 'duplicate' | 'rejected' | 'failed';

/** Records the stream holds ahead of the one being published (its highWaterMark); past it, it stops fetching. */
export const MAX_BUFFERED = 1000;
/** At most this many bytes in one fetch answer, so a burst of large records stays bounded too. */
const FETCH_MAX_BYTES = 8 * 1024 * 1024;

/** What the ingest uses of the node: the channel service's publish, --max-payload, a logger and a metric. */
export interface IngestContext {
  readonly target: KafkaIngestTarget;
  readonly nodeId: string;
  readonly maxPayload: number;
  /**
   * Publishes `data` (JSON text) into `channel` as POST /api/publish does; `once` names the
   * record's place, so a record handed over again is not published twice. Rejects with
   * BusUnavailableError while the bus or the store cannot take it.
   */
  readonly publish: (channel: string, data: string, once: { readonly source: string; readonly position: number }) => Promise<{ readonly duplicate?: boolean }>;
  readonly logger: Logger;
  readonly observe: (result: IngestResult) => void;
}

type IngestRecord = Message<Buffer, Buffer, Buffer, Buffer>;

/** Thrown inside the loop when {@link KafkaIngest.close} interrupts a retry. */
class Closed extends Error {}

/** The consumer of --kafka-ingest on one node: start with {@link start}, stop with {@link close} (safe twice). */
export class KafkaIngest {
  private readonly ctx: IngestContext;
  private readonly sleeper = new Sleeper();
  private closing = false;
  private running: Promise<void> | undefined;
  private consumer: Consumer<Buffer, Buffer, Buffer, Buffer> | undefined;
  private stream: MessagesStream<Buffer, Buffer, Buffer, Buffer> | undefined;
  /** Per partition, the latest handled record whose offset is still to commit. */
  private readonly toCommit = new Map<number, IngestRecord>();
  private committing: Promise<void> | undefined;
  /** True after the first failure to read was logged at warn, until a session reads again. */
  private warned = false;
  /** Skipped records: one warn line per window, with how many went unlogged (the metric counts each). */
  private readonly skipped: QuietLog;

  constructor(context: IngestContext) {
    this.ctx = context;
    this.skipped = new QuietLog(context.logger, TIMINGS.unnoticedLogMs);
  }

  /** Starts consuming in the background; failures are retried with backoff until {@link close}. */
  start(): void {
    this.running ??= this.run();
  }

  private async run(): Promise<void> {
    let attempt = 0;
    while (!this.closing) {
      const openedAt = Date.now();
      try {
        await this.session();
      } catch (err) {
        if (this.closing || err instanceof Closed) break;
        this.unreadable(err);
      } finally {
        await this.endSession();
      }
      if (this.closing) break;
      if (Date.now() - openedAt > STABLE_SESSION_MS) attempt = 0;
      await this.sleeper.sleep(busRetryDelay(attempt++));
    }
  }

  /** One consumer in the group: reads from the committed offsets (a new group: the start of the topic) until the stream fails. */
  private async session(): Promise<void> {
    const { topic, brokers, group } = this.ctx.target;
    const { Consumer, MessagesStreamModes } = await loadKafkaClient();
    if (this.closing) throw new Closed(); // closed while the client module loaded: no consumer to make
    const consumer = new Consumer<Buffer, Buffer, Buffer, Buffer>({
      clientId: `fanout-ingest-${this.ctx.nodeId}`,
      bootstrapBrokers: [...brokers],
      groupId: group,
      ...CLIENT_TIMINGS,
      ...GROUP_TIMINGS,
      maxWaitTime: FETCH_MAX_WAIT_MS,
      maxBytes: FETCH_MAX_BYTES,
      autocommit: false,
    });
    this.consumer = consumer;
    const failed = new Promise<never>((_, reject) => consumer.on('error', reject));
    failed.catch(() => {});
    const stream = await Promise.race([
      consumer.consume({
        topics: [topic],
        mode: MessagesStreamModes.COMMITTED,
        // A group that committed nothing yet starts at the beginning, as Kafka Connect sinks do.
        fallbackMode: 'earliest',
        autocommit: false,
        highWaterMark: MAX_BUFFERED,
      }),
      failed,
    ]);
    this.stream = stream;
    if (this.closing) return;
    this.ctx.logger.info({ topic, group, brokers: this.ctx.target.describe }, 'kafka ingest: reading');
    this.warned = false;
    // The consumer's 'error' (it could not rejoin its group) ends the stream, and so the loop below.
    void failed.catch((err: unknown) => stream.destroy(err instanceof Error ? err : new Error(String(err))));
    for await (const record of stream as AsyncIterable<IngestRecord>) {
      if (this.closing) return;
      await this.handle(record);
      this.commitLater(record);
    }
    if (!this.closing) throw new Error('the consumer stream ended');
  }

  /** Publishes one record (or refuses it for good); retries while the bus or the store is unavailable. */
  private async handle(record: IngestRecord): Promise<void> {
    const { logger, observe } = this.ctx;
    const where = { partition: record.partition, offset: String(record.offset) };
    const input = this.input(record);
    if (isRefusal(input)) {
      observe('rejected');
      // A record that can never be published is the back end's bug: say where it is and why, at
      // warn, but at most once per window (a topic full of them would flood the log).
      this.skipped.warn('ingest_record_skipped', { topic: record.topic, ...where, reason: input.message }, 'kafka ingest: record skipped');
      return;
    }
    const once = { source: `${record.topic}/${record.partition}`, position: Number(record.offset) };
    for (let attempt = 0; ; attempt++) {
      try {
        const result = await this.ctx.publish(input.channel, input.data, once);
        observe(result.duplicate ? 'duplicate' : 'published');
        return;
      } catch (err) {
        if (this.closing) throw new Closed();
        observe('failed');
        const fields = { ...where, channel: input.channel, err: errorMessage(err) };
        if (err instanceof BusUnavailableError) logger.debug(fields, 'kafka ingest: publish failed, retrying');
        else logger.error(fields, 'kafka ingest: publish failed unexpectedly, retrying');
        await this.sleeper.sleep(busRetryDelay(attempt));
        if (this.closing) throw new Closed();
      }
    }
  }

  /** The record as a publish, with the checks of POST /api/publish, or why it never can be one. */
  private input(record: IngestRecord): ReturnType<typeof publishInput> {
    if (!record.key || record.key.length === 0) return { error: 'bad_request', message: 'no key (the key names the channel)' };
    if (!record.value) return { error: 'bad_request', message: 'no value' };
    // JSON text is UTF-8 (RFC 8259): decoding other bytes would publish U+FFFD in their place, data the producer never wrote.
    if (!isUtf8(record.value)) return { error: 'bad_request', message: 'value is not valid UTF-8' };
    if (!isUtf8(record.key)) return { error: 'bad_request', message: 'key is not valid UTF-8' };
    const parsed = parseJsonInput(record.value, this.ctx.maxPayload);
    if (isRefusal(parsed)) return { error: parsed.error, message: `value ${parsed.message}` };
    return publishInput(record.key.toString('utf8'), parsed.value);
  }

  /**
   * Commits the partition's offset past `record` soon, after its publish: one commit per
   * partition in flight, later records replacing earlier ones that wait. A commit that fails (the
   * partition moved to another node meanwhile) only means the record may be handed over again,
   * and the store refuses it then.
   */
  private commitLater(record: IngestRecord): void {
    this.toCommit.set(record.partition, record);
    this.committing ??= this.commitQueued().finally(() => (this.committing = undefined));
  }

  private async commitQueued(): Promise<void> {
    while (this.toCommit.size > 0) {
      const batch = [...this.toCommit.values()];
      this.toCommit.clear();
      await Promise.all(
        batch.map((record) =>
          Promise.resolve(record.commit()).catch((err: unknown) =>
            this.ctx.logger.debug({ partition: record.partition, offset: String(record.offset), err: kafkaErrorMessage(err) }, 'kafka ingest: commit failed'),
          ),
        ),
      );
    }
  }

  private unreadable(err: unknown): void {
    const fields = { topic: this.ctx.target.topic, brokers: this.ctx.target.describe, err: kafkaErrorMessage(err) };
    if (this.warned) return void this.ctx.logger.debug(fields, 'kafka ingest: still cannot read the topic, retrying');
    this.warned = true;
    this.ctx.logger.warn(fields, 'kafka ingest: cannot read the topic (retrying; the node serves meanwhile)');
  }

  /** Commits what was published, then leaves the group at once (its partitions go to the other nodes now, not after the session timeout). */
  private async endSession(): Promise<void> {
    const stream = this.stream;
    const consumer = this.consumer;
    this.stream = undefined;
    this.consumer = undefined;
    await this.committing;
    await stream?.close().catch(() => {});
    if (consumer) await forceClose(consumer);
  }

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    this.sleeper.wake();
    // A stream waiting for records ends now, so the loop sees `closing`.
    await this.stream?.close().catch(() => {});
    await this.running;
  }
}
