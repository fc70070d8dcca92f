/**
 * Kafka with `@platformatic/kafka`: one Kafka topic carries the whole bus (its name from the --bus
 * URL, `fanout` by default), each record keyed by the bus topic, so every bus topic stays on one
 * partition and keeps its order however many partitions the Kafka topic has. Every node reads
 * every partition and keeps the records of the bus topics it subscribed; subscribe and unsubscribe
 * are local set operations (docs/brokers.md).
 *
 * Every node must receive every record, so no consumer group shares the work: each adapter is
 * the only member of a group of its own (`fanout-<random>-<n>`, new for each connection; the
 * client always joins one), and it places itself explicitly: at the end of the log when it first
 * connects (before `connect()` resolves, so nothing published after that is missed), and
 * afterwards at the offset after the last record it handed on. Nothing is committed to Kafka:
 * the positions live in the adapter.
 *
 * Reconnects: any failure of the session (the consumer's stream ends or errors, the consumer
 * drops out of its group) closes the producer and consumer and opens new ones from the kept
 * positions, so after a broker restart or a cut link the node goes on from where it was, with
 * nothing the log holds lost and nothing handed on twice. Records published while the node was
 * away are delivered when it is back (more than the {@link Bus} contract asks, never less).
 * The session loop, the producer and the topic creation are the kit's (brokers/kafka/session.ts).
 */
import { randomBytes } from 'node:crypto';
import type { Consumer } from '@platformatic/kafka';
import type { KafkaAddress } from '../../config/bus-address.js';
import { BusUnavailableError } from '../../errors.js';
import { kafkaErrorMessage } from './client.js';
import { BaseBus } from '../../stores/bus.js';
import { FirstAttempt } from '../../stores/retry.js';
import {
  createTopic,
  openSession,
  SessionLoop,
  SingleFlightProducer,
  type KafkaRecord,
  type RecordToProduce,
  type Session,
  type TopicShape,
} from './session.js';

/** The Kafka adapter (`--bus kafka://…`): one Kafka topic, keyed by bus topic, read whole by every node. */
export class KafkaBus extends BaseBus {
  readonly kind: string = 'kafka';
  protected readonly address: KafkaAddress;
  /** This adapter's name at the broker: its client id, and the stem of its sessions' group ids. */
  private readonly id = `fanout-${randomBytes(8).toString('hex')}`;
  private sessions = 0;
  protected readonly subscribed = new Set<string>();
  /** Per partition, the offset of the next record to hand on; set at the first connect. */
  protected positions: Map<number, bigint> | undefined;
  private session: Session | undefined;
  private readonly first = new FirstAttempt();
  private readonly loop = new SessionLoop({
    label: 'kafka',
    open: (clients) => this.open(clients),
    live: (session) => this.live(session),
    failed: (err) => {
      const error = err instanceof BusUnavailableError ? err : new BusUnavailableError(`kafka: ${kafkaErrorMessage(err)}`, { cause: err });
      this.setStatus('disconnected', error);
      this.first.settled(error);
    },
  });
  private readonly producer = new SingleFlightProducer({
    session: () => (this.connected ? this.session : undefined),
    unavailable: () => new BusUnavailableError(`kafka is ${this.status}`),
    full: (waiting) => new BusUnavailableError(`kafka has ${waiting} publishes waiting for the broker`),
    failed: (err) => new BusUnavailableError(`kafka publish failed: ${kafkaErrorMessage(err)}`, { cause: err }),
  });

  /** `address` is the --bus URL parsed at load (config/bus-address.ts). */
  constructor(address: KafkaAddress) {
    super();
    this.address = address;
  }

  connect(): Promise<void> {
    return this.first.start(() => this.loop.start());
  }

  /** Holds a session until it fails: `connected` once {@link ready}. */
  private async live(session: Session): Promise<{ cause: Error; usable: boolean }> {
    this.session = session;
    const ready = await Promise.race([this.ready().then(() => undefined), session.ended]);
    if (ready !== undefined || this.loop.closing) {
      // The session failed (or the bus closed) before the adapter was ready.
      this.session = undefined;
      return { cause: ready ?? new BusUnavailableError('kafka bus closed'), usable: false };
    }
    this.setStatus('connected');
    this.first.settled();
    const cause = await session.ended;
    this.session = undefined;
    return { cause, usable: true };
  }

  /** A session on the bus topic, read from the kept positions, with a consumer group of its own. */
  private open(clients: Parameters<typeof openSession>[1]): Promise<Session> {
    const { brokers, topic } = this.address;
    return openSession(
      {
        label: 'kafka',
        brokers,
        topic,
        clientId: this.id,
        groupId: `${this.id}-${++this.sessions}`,
        // With the broker's defaults (num.partitions, default.replication.factor).
        ensureTopic: async (admin) => void (await createTopic(admin, topic)),
        fallbackMode: this.fallbackMode,
        positions: async (consumer, shape, ends) => {
          // First connect: the end of the log, unless a subclass starts elsewhere. Afterwards:
          // where this adapter stopped (a partition added meanwhile starts at its end).
          const positions = await this.startPositions(consumer, shape, ends);
          ends.forEach((end, partition) => {
            if (!positions.has(partition)) positions.set(partition, end);
          });
          return positions;
        },
        started: (positions) => void (this.positions = positions),
        urgent: () => this.urgent(),
        onRecord: (positions, message) => this.deliver(positions, message),
      },
      clients,
    );
  }

  /** Where a position the log no longer has restarts: the end (the bus stores nothing). */
  protected readonly fallbackMode: 'latest' | 'earliest' = 'latest';

  /**
   * The positions a session starts from: the kept ones after the first connect; on the first,
   * none (every partition then starts at its end, `ends`). A subclass that indexes the log starts
   * earlier. `shape` is the topic as the session found it.
   */
  protected async startPositions(_consumer: Consumer, shape: TopicShape, _ends: readonly bigint[]): Promise<Map<number, bigint>> {
    // A topic deleted and created again numbers from 0: the kept positions belong to the old one.
    if (this.topicId !== undefined && shape.id !== this.topicId) this.positions = undefined;
    this.topicId = shape.id;
    return this.positions ?? new Map<number, bigint>();
  }

  /** The id of the topic the kept positions belong to. */
  private topicId: string | undefined;

  /** The open session's consumer, for requests a subclass makes (offsets); BusUnavailableError while there is none. */
  protected consumer(): Consumer {
    const session = this.session;
    if (!session) throw new BusUnavailableError(`kafka is ${this.status}`);
    return session.consumer;
  }

  /** True while this node waits to read records (a subclass's reads and writes); no fetch linger then (brokers/kafka/fetch-linger.ts). */
  protected urgent(): boolean {
    return false;
  }

  /** Ends the session's fetch linger: call when starting to wait for records. */
  protected hurry(): void {
    this.session?.hurry();
  }

  /** Resolves when a new session may report `connected` (a subclass that indexes the log waits for it to catch up). */
  protected async ready(): Promise<void> {}

  /** Moves the partition's position past a record and hands it on (once: records a closing session still emits are skipped). */
  private deliver(positions: Map<number, bigint>, message: KafkaRecord): void {
    const position = positions.get(message.partition) ?? 0n;
    if (this.loop.closing || position > message.offset) return;
    positions.set(message.partition, message.offset + 1n);
    this.record(message, position);
  }

  /**
   * One record, in the log's order per partition; `expected` is the offset the partition's
   * position was at (a record with a higher one means the consumer skipped records the log no
   * longer holds). Hands the record on when its bus topic is subscribed.
   */
  protected record(message: KafkaRecord, _expected: bigint): void {
    const topic = message.key?.toString();
    if (topic !== undefined && this.subscribed.has(topic)) this.handler(topic, message.value);
  }

  async publish(topic: string, payload: Buffer): Promise<void> {
    await this.produce({ topic: this.address.topic, key: Buffer.from(topic), value: payload });
  }

  /**
   * Queues one record for the broker (brokers/kafka/session.ts: one request in flight); resolves
   * once it is written, with its offset when the record names its partition (a subclass that
   * needs offsets places its records itself).
   */
  protected async produce(message: RecordToProduce): Promise<bigint | undefined> {
    // The client would queue and retry while the broker is away; the contract says reject instead.
    if (!this.session || !this.connected) throw new BusUnavailableError(`kafka is ${this.status}`);
    const [offset] = await this.producer.send([message]);
    return offset;
  }

  async subscribe(topic: string): Promise<void> {
    if (!this.connected) throw new BusUnavailableError(`kafka is ${this.status}`);
    this.subscribed.add(topic);
  }

  async unsubscribe(topic: string): Promise<void> {
    this.subscribed.delete(topic);
  }

  async close(): Promise<void> {
    if (this.loop.closing) return;
    this.loop.stop();
    this.setStatus('closed');
    this.first.settled(new BusUnavailableError('kafka bus closed'));
    const session = this.session;
    this.session = undefined;
    await this.loop.closed(session);
  }
}
