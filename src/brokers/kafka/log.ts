/**
 * Channel history on Kafka (`--history kafka://…`, the default with `--bus kafka://…`): the log
 * is a Kafka topic of its own, `<bus topic>.channels`, and offsets are its partition offsets.
 *
 * Layout. Each channel's records are keyed by its bus topic (`<prefix>:ch:<channel>`), so a
 * channel lives on one partition and its offsets increase (not consecutively: the channels of a
 * partition share its offsets; a Fanout offset is the record's Kafka offset + 1). The epoch is
 * the topic's id and partition count: a topic created again, or given more partitions (which
 * moves channels), starts a new one. Two kinds of record:
 * a message (header `fanout-kind: m`, the value is its data as JSON text, the origin node in
 * `fanout-origin`, the publish time as the record's timestamp) and a control payload (a presence
 * event, the finished envelope as the value).
 *
 * Every node reads the whole topic with a consumer of its own (the bus adapter's session,
 * brokers/kafka/bus.ts) and indexes the messages it reads (brokers/kafka/log-index.ts): reads and recovery
 * are served from that index, and a message reaches a node's subscribers from the same consumer,
 * so on each node a channel's messages, history and fences agree, in offset order. At start the
 * node reads the records younger than --history-ttl (the whole retained log with 0), and is ready
 * once it has read up to where the log ended when it connected; those records go to the index
 * only. Reads first wait until the node has read everything the channel's partition held when the
 * read began (one ListOffsets request), so what a node answers includes every message published
 * before, on any node.
 *
 * Outage: publishes and reads reject with BusUnavailableError while the session is down; the
 * adapter reconnects from the positions it kept, so the index misses nothing the log still has
 * (a gap the log no longer holds raises the index's floor: recovery across it says
 * `recovered:false`).
 */
import { createHash } from 'node:crypto';
import type { Consumer, Message } from '@platformatic/kafka';
import { KafkaBus } from './bus.js';
import { loadedKafkaClient } from './client.js';
import type { KafkaAddress } from '../../config/bus-address.js';
import { BusUnavailableError } from '../../errors.js';
import type { Logger } from '../../logger.js';
import { buildMessagePayload, channelPayloadHead } from '../../protocol/message-frame.js';
import { KafkaIndex } from './log-index.js';
import { OnceVerdicts } from './once.js';
import { IdempotencyKeys } from '../../stores/idempotency.js';
import { listEnds, SharedEnds, type TopicShape } from './session.js';
import type { ChannelPosition, OutgoingMessage } from '../../stores/store.js';

const KIND_HEADER = Buffer.from('fanout-kind');
const ORIGIN_HEADER = Buffer.from('fanout-origin');
/** A message's {@link OutgoingMessage.once}: `<position> <source>`. */
const ONCE_HEADER = Buffer.from('fanout-once');
/** A message's {@link OutgoingMessage.idempotency}: `<window seconds> <key>`. */
const IDEMPOTENCY_HEADER = Buffer.from('fanout-idem');
const KIND_MESSAGE = Buffer.from('m');
/** How long a read waits for the node to read up to the log's end before it counts as unavailable. */
const CATCH_UP_TIMEOUT_MS = 3000;
/** How often messages older than --history-ttl leave the index. */
const EXPIRE_EVERY_MS = 1000;

/** The Kafka topic channel history lives on, beside the bus topic `busTopic`. */
export function channelsTopic(busTopic: string): string {
  return `${busTopic}.channels`;
}

/** The compacted Kafka topic presence lives on (brokers/kafka/presence.ts), beside the bus topic `busTopic`. */
export function presenceTopic(busTopic: string): string {
  return `${busTopic}.presence`;
}

/** The epoch of a topic: 16 hex digits from its id and partition count. */
export function topicEpoch(shape: TopicShape): string {
  return createHash('sha256').update(`${shape.id}\n${shape.partitions}`).digest('hex').slice(0, 16);
}

/**
 * A record's Fanout offset: its Kafka offset + 1, so a channel's first message is at least 1 and
 * 0 still means "before any message" (protocol/frames: a `since` of 0 recovers everything).
 */
export function fanoutOffset(kafkaOffset: bigint): number {
  return Number(kafkaOffset) + 1;
}

/**
 * The partition a key goes to: the Java client's and @platformatic/kafka's default partitioner
 * (murmur2, positive). With more than one partition, the client module must be loaded
 * (loadKafkaClient): a topic's partition count is known only from a session, which loads it.
 */
export function partitionOf(key: Buffer, partitions: number): number {
  if (partitions === 1) return 0;
  const client = loadedKafkaClient();
  if (!client) throw new Error('partitionOf: @platformatic/kafka is not loaded yet (loadKafkaClient)');
  return (client.murmur2(key) >>> 0) % partitions;
}

export interface KafkaLogOptions {
  /** The Kafka brokers (--history, or --bus when history is the bus's Kafka); the topic is {@link channelsTopic} of its topic. */
  readonly address: KafkaAddress;
  readonly nodeId: string;
  readonly historySize: number;
  readonly historyTtl: number;
  /** --history-max-bytes: what the node's index of the log may hold (brokers/kafka/log-index.ts); default 256 MiB, 0 for no cap. */
  readonly historyMaxBytes?: number;
  readonly historyEvicted?: (channel: string) => void; // told of each channel the index dropped whole for --history-max-bytes
  readonly historySized?: (channel: string, messages: number) => void; // told what a channel holds as each of its records is read
  /** The channel of a bus topic (the channel layer's naming); undefined for a topic that is none. */
  readonly channelOf: (topic: string) => string | undefined;
  /** The bus topic of a channel (the inverse of `channelOf`). */
  readonly topicOf: (channel: string) => string;
  /** A stored message whose bus payload could not be built (`channelPayloadHead` threw): it is in history but not delivered live; counted and logged by the caller. */
  readonly undelivered?: (err: unknown, channel: string) => void;
  readonly logger: Logger;
}

interface Waiter {
  readonly partition: number;
  readonly offset: bigint;
  readonly resolve: () => void;
}

/**
 * The channels topic as a node sees it: a {@link KafkaBus} on that topic (the route channel
 * topics take) that indexes what it reads. `publish` writes a control payload of the topic's
 * channel; {@link KafkaLog.append} a message.
 */
export class KafkaLog extends KafkaBus {
  override readonly kind = 'kafka-history';
  /** The topic's epoch, known once connected. */
  epoch = '';
  readonly index: KafkaIndex;
  private shape: TopicShape = { id: '', partitions: 1 };
  /** Per partition, the end of the log when this node first read it: records before are history only, not delivered. */
  private bootstrap = new Map<number, bigint>();
  private waiters: Waiter[] = [];
  private readonly expiry: NodeJS.Timeout;
  /** The log's verdict on this node's once-marked appends, handed from the reader to the writer. */
  private readonly once = new OnceVerdicts(CATCH_UP_TIMEOUT_MS);
  /** The log's verdict on this node's appends with an idempotency key: the first publish's position, or null when this one is the first. */
  private readonly keyVerdicts = new OnceVerdicts<ChannelPosition | null>(CATCH_UP_TIMEOUT_MS);
  /**
   * Per partition, the idempotency keys of the records read (OutgoingMessage.idempotency), timed
   * by the records' own timestamps, so every node that read a partition from the same place
   * decides the same (see {@link record}).
   */
  private readonly keys = new Map<number, IdempotencyKeys>();

  constructor(private readonly options: KafkaLogOptions) {
    super({ ...options.address, topic: channelsTopic(options.address.topic) });
    this.index = new KafkaIndex({
      historySize: options.historySize,
      historyTtl: options.historyTtl,
      ...(options.historyMaxBytes === undefined ? {} : { historyMaxBytes: options.historyMaxBytes }),
      ...(options.historyEvicted ? { evicted: options.historyEvicted } : {}), ...(options.historySized ? { sized: options.historySized } : {}),
    });
    this.expiry = setInterval(() => this.index.expire(Date.now()), EXPIRE_EVERY_MS);
    this.expiry.unref();
  }

  /** A position the log no longer has restarts at the oldest it has: the index wants every record it can get. */
  protected override readonly fallbackMode = 'earliest' as const;

  /** The topic name this log reads and writes. */
  get topic(): string {
    return this.address.topic;
  }

  /**
   * After a reconnect to the same topic: the kept positions. Otherwise (the first connect, or the
   * topic is another one now): a new epoch, an empty index, and a start at the records younger
   * than --history-ttl, whose delivery stops short of the log's end now.
   */
  protected override async startPositions(consumer: Consumer, shape: TopicShape, ends: readonly bigint[]): Promise<Map<number, bigint>> {
    const epoch = topicEpoch(shape);
    if (this.positions && epoch === this.epoch) return this.positions;
    const first = this.epoch === '';
    const ttl = this.options.historyTtl;
    // -2: the log's start; a time: the first record at or after it (-1 when there is none).
    const timestamp = ttl > 0 ? BigInt(Date.now() - ttl * 1000) : -2n;
    const starts = await listEnds(consumer, this.topic, timestamp);
    if (!first) this.options.logger.warn({ topic: this.topic }, 'the Kafka history topic is another one now (created again, or more partitions); offsets start over in a new epoch');
    this.epoch = epoch;
    this.shape = shape;
    this.index.clear();
    this.keys.clear();
    const positions = new Map<number, bigint>();
    this.bootstrap = new Map();
    ends.forEach((end, partition) => {
      const start = starts[partition];
      const from = start === undefined || start < 0n ? end : start;
      positions.set(partition, from);
      this.index.open(partition, fanoutOffset(from));
      // A topic that is new to a running node holds only messages it never delivered.
      if (first) this.bootstrap.set(partition, end);
    });
    this.positions = positions;
    return positions;
  }

  /** Ready once every partition was read up to where it ended at the first connect. */
  protected override async ready(): Promise<void> {
    await Promise.all([...this.bootstrap].map(([partition, end]) => this.reached(partition, end)));
  }

  protected override record(message: Message<Buffer, Buffer, Buffer, Buffer>, expected: bigint): void {
    const { partition } = message;
    const offset = fanoutOffset(message.offset);
    if (message.offset > expected) this.index.skipTo(partition, offset);
    const topic = message.key?.toString();
    const channel = topic === undefined ? undefined : this.options.channelOf(topic);
    if (topic !== undefined && channel !== undefined && message.value) {
      const delivered = message.offset >= (this.bootstrap.get(partition) ?? 0n) && this.subscribed.has(topic);
      const headers = readHeaders(message.headers);
      if (headers.kind?.equals(KIND_MESSAGE)) {
        const data = message.value.toString('utf8');
        const time = Number(message.timestamp);
        const once = parseOnce(headers.once);
        const origin = headers.origin?.toString('latin1') ?? '';
        // The first record of a once-mark in the log wins, on every node alike (they all read the
        // log in this order): a later one (two nodes that both checked before either appended) is
        // neither history nor delivered, and its writer hears `duplicate`.
        const duplicate = once !== undefined && once.position <= this.index.mark(channel, once.source);
        if (once && origin === this.options.nodeId) this.once.decided(`${partition}:${message.offset}`, duplicate);
        // Idempotency keys alike: the first record of a key in the log's order, within the
        // window its own record set (by the records' timestamps), is the message.
        const idempotency = parseIdempotency(headers.idem);
        const first = idempotency && !duplicate ? this.keysOf(partition).find(channel, idempotency.key, time) : undefined;
        if (idempotency && origin === this.options.nodeId) this.keyVerdicts.decided(`${partition}:${message.offset}`, first ?? null);
        if (idempotency && !duplicate && !first) this.keysOf(partition).remember(channel, idempotency.key, { offset, epoch: this.epoch }, time + idempotency.window * 1000);
        if (!duplicate && !first) {
          this.index.append(partition, offset, time, channel, data, once);
          if (delivered) this.deliverMessage(topic, channel, origin, time, offset, data);
        }
      } else if (delivered) {
        this.handler(topic, message.value);
      }
    }
    if (this.waiters.length > 0) this.wake();
  }

  private deliverMessage(topic: string, channel: string, origin: string, time: number, offset: number, data: string): void {
    let head: Buffer;
    try {
      head = channelPayloadHead(channel, origin, time);
    } catch (err) {
      this.options.undelivered?.(err, channel);
      return;
    }
    this.handler(topic, buildMessagePayload(head, offset, this.epoch, data));
  }

  /** The bus topic of a channel. */
  topicOf(channel: string): string {
    return this.options.topicOf(channel);
  }

  /** The partition of a bus topic's channel. */
  partitionOfTopic(topic: string): number {
    return partitionOf(Buffer.from(topic), this.shape.partitions);
  }

  /** The idempotency keys read on `partition`. */
  keysOf(partition: number): IdempotencyKeys {
    let keys = this.keys.get(partition);
    if (!keys) this.keys.set(partition, (keys = new IdempotencyKeys()));
    return keys;
  }

  /**
   * Writes a message of `topic`'s channel; resolves with its offset. With `once` or
   * `idempotency`, waits until this node read the record back and the log's order decided
   * whether it was the first: a repeat resolves `duplicate` (with an idempotency key, at the
   * first publish's position).
   */
  async append(topic: string, data: string, origin: string, once?: OutgoingMessage['once'], idempotency?: OutgoingMessage['idempotency']): Promise<ChannelPosition & { readonly duplicate?: boolean }> {
    const epoch = this.epoch;
    const headers = new Map([
      [KIND_HEADER, KIND_MESSAGE],
      [ORIGIN_HEADER, Buffer.from(origin, 'latin1')],
    ]);
    if (once) headers.set(ONCE_HEADER, Buffer.from(`${once.position} ${once.source}`));
    if (idempotency) headers.set(IDEMPOTENCY_HEADER, Buffer.from(`${idempotency.window} ${idempotency.key}`));
    const offset = await this.produce({
      topic: this.topic,
      key: Buffer.from(topic),
      value: Buffer.from(data),
      partition: this.partitionOfTopic(topic),
      headers,
      timestamp: BigInt(Date.now()),
    });
    if (offset === undefined) throw new BusUnavailableError('kafka: the broker did not say where it wrote the message');
    if (once) this.hurry();
    if (once && (await this.once.verdict(`${this.partitionOfTopic(topic)}:${offset}`))) return { offset: fanoutOffset(offset), epoch, duplicate: true };
    if (idempotency) {
      const first = await this.keyVerdicts.verdict(`${this.partitionOfTopic(topic)}:${offset}`);
      if (first) return { ...first, duplicate: true };
    }
    return { offset: fanoutOffset(offset), epoch };
  }

  /** A control payload (presence event) of `topic`'s channel, in the channel's order. */
  override async publish(topic: string, payload: Buffer): Promise<void> {
    if (this.options.channelOf(topic) === undefined) throw new BusUnavailableError(`the Kafka history topic carries channel topics only, not ${topic}`);
    await this.produce({ topic: this.topic, key: Buffer.from(topic), value: payload, partition: this.partitionOfTopic(topic) });
  }

  /**
   * Waits until this node has read every record `partition` held when called (the end the
   * broker reports now), so a read that follows answers with everything published before.
   */
  async catchUp(partition: number): Promise<void> {
    const end = (await this.logEnds())[partition];
    if (end === undefined) throw new BusUnavailableError(`kafka: no partition ${partition} in ${this.topic}`);
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.reached(partition, end),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new BusUnavailableError(`kafka: this node did not read up to the log's end within ${CATCH_UP_TIMEOUT_MS / 1000} s`)), CATCH_UP_TIMEOUT_MS);
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
    if (!this.connected) throw new BusUnavailableError(`kafka is ${this.status}`);
  }

  /** The ends requests: at most one in flight and one queued, shared by the reads that began meanwhile. */
  private readonly ends = new SharedEnds();

  /** The end of every partition, as the broker says after this call began. */
  private logEnds(): Promise<readonly bigint[]> {
    return this.ends.latest(async () => {
      try {
        return await listEnds(this.consumer(), this.topic);
      } catch (err) {
        // The text reaches clients (`unavailable`): the broker's own error stays in `cause`.
        throw err instanceof BusUnavailableError ? err : new BusUnavailableError('the kafka store did not answer', { cause: err });
      }
    });
  }

  /** The Fanout offset of the last record this node read on `partition` (0 before the first). */
  position(partition: number): number {
    // The Kafka offset of the next record to read is the Fanout offset of the last one read.
    return Number(this.positions?.get(partition) ?? 0n);
  }

  /** Hands a payload to this node's own route right now, in its place among what the consumer delivered (a fence). */
  deliverLocal(topic: string, payload: Buffer): void {
    if (this.subscribed.has(topic)) this.handler(topic, payload);
  }

  override async close(): Promise<void> {
    clearInterval(this.expiry);
    await super.close();
    for (const w of this.waiters) w.resolve();
    this.waiters = [];
  }

  private reached(partition: number, offset: bigint): Promise<void> {
    if ((this.positions?.get(partition) ?? -1n) >= offset) return Promise.resolve();
    const reached = new Promise<void>((resolve) => this.waiters.push({ partition, offset, resolve }));
    return this.hurry(), reached;
  }

  protected override urgent(): boolean { // a read waits to catch up, or a writer to read its once-marked record back: no fetch linger
    return this.waiters.length > 0 || this.once.pending > 0;
  }

  private wake(): void {
    const left: Waiter[] = [];
    for (const w of this.waiters) {
      if ((this.positions?.get(w.partition) ?? -1n) >= w.offset) w.resolve();
      else left.push(w);
    }
    this.waiters = left;
  }
}

function readHeaders(headers: Map<Buffer, Buffer> | undefined): { kind?: Buffer; origin?: Buffer; once?: Buffer; idem?: Buffer } {
  const out: { kind?: Buffer; origin?: Buffer; once?: Buffer; idem?: Buffer } = {};
  if (!headers) return out;
  for (const [key, value] of headers) {
    if (key.equals(KIND_HEADER)) out.kind = value;
    else if (key.equals(ORIGIN_HEADER)) out.origin = value;
    else if (key.equals(ONCE_HEADER)) out.once = value;
    else if (key.equals(IDEMPOTENCY_HEADER)) out.idem = value;
  }
  return out;
}

function parseOnce(value: Buffer | undefined): OutgoingMessage['once'] {
  if (!value) return undefined;
  const text = value.toString('utf8');
  const space = text.indexOf(' ');
  const position = Number(text.slice(0, space));
  return space > 0 && Number.isSafeInteger(position) ? { position, source: text.slice(space + 1) } : undefined;
}

function parseIdempotency(value: Buffer | undefined): OutgoingMessage['idempotency'] {
  if (!value) return undefined;
  const text = value.toString('utf8');
  const space = text.indexOf(' ');
  const window = Number(text.slice(0, space));
  return space > 0 && Number.isSafeInteger(window) && window > 0 ? { window, key: text.slice(space + 1) } : undefined;
}
