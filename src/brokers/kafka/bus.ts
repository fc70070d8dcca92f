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
 */
import { randomBytes } from 'node:crypto';
import type { Admin, Consumer, Message, MessageToProduce, MessagesStream, Producer } from '@platformatic/kafka';
import type { KafkaAddress } from '../../config/bus-address.js';
import { BusUnavailableError, errorMessage } from '../../errors.js';
import { BaseBus } from '../../stores/bus.js';
import { loadedKafkaClient, loadKafkaClient } from './client.js';
import { busRetryDelay, FirstAttempt, Sleeper } from '../../stores/retry.js';

/**
 * Client timings: a refused or closed connection is seen within about a second (three tries 250 ms
 * apart); a silent one when three requests in a row got no answer within 8 s (longer than a
 * group join, which waits the broker's group.initial.rebalance.delay.ms, 3 s by default).
 */
export const CLIENT_TIMINGS = Object.freeze({ connectTimeout: 2000, requestTimeout: 8000, timeout: 5000, retries: 2, retryDelay: 250 });
/** A session that lasted this long resets the reconnect backoff. */
const STABLE_SESSION_MS = 10_000;
/** An attempt to open a session that has not succeeded by then is abandoned and retried. */
const OPEN_TIMEOUT_MS = 15_000;
/**
 * The group's liveness: each session's group is dropped by the broker this long after the
 * session ends without leaving (a crash); the broker's group.min.session.timeout.ms is 6 s.
 */
export const GROUP_TIMINGS = Object.freeze({ sessionTimeout: 10_000, rebalanceTimeout: 10_000, heartbeatInterval: 3000 });
/** A fetch returns as soon as records arrive; with none, the broker answers empty after this long. */
export const FETCH_MAX_WAIT_MS = 500;

/** At most this many publishes wait for the broker; more are refused (BusUnavailableError), so a slow broker cannot grow memory without bound. */
const MAX_QUEUED_PUBLISHES = 10_000;
/**
 * At most this many records, and bytes, in one produce request (a record larger goes alone). The
 * broker refuses a whole record batch larger than the topic's max.message.bytes (1 MiB by default).
 */
const MAX_BATCH = 500;
const MAX_BATCH_BYTES = 512 * 1024;

interface QueuedPublish {
  readonly message: MessageToProduce<Buffer, Buffer, Buffer, Buffer>;
  /** With the record's offset when the message named its partition (see {@link KafkaBus.produce}). */
  readonly resolve: (offset: bigint | undefined) => void;
  readonly reject: (err: Error) => void;
}

/** What a session learned of the Kafka topic when it opened. */
export interface TopicShape {
  /** The topic's id: a topic deleted and created again has another. */
  readonly id: string;
  readonly partitions: number;
}

/** One connected run: the clients, and a promise that settles once any of them fails. */
interface Session {
  readonly producer: Producer;
  readonly consumer: Consumer;
  readonly stream: MessagesStream<Buffer, Buffer, Buffer, Buffer>;
  /** Settles with the first failure: the stream's, the consumer's, or one {@link Session.fail} reports. */
  readonly ended: Promise<Error>;
  readonly fail: (err: Error) => void;
}

/** The Kafka adapter (`--bus kafka://…`): one Kafka topic, keyed by bus topic, read whole by every node. */
export class KafkaBus extends BaseBus {
  readonly kind: string = 'kafka';
  protected readonly address: KafkaAddress;
  /** This adapter's name at the broker: its client id, and the stem of its sessions' group ids. */
  private readonly id = `fanout-${randomBytes(8).toString('hex')}`;
  private sessions = 0;
  /** The clients of the session being opened, for {@link close}. */
  private opening: Closable[] | undefined;
  protected readonly subscribed = new Set<string>();
  /** Per partition, the offset of the next record to hand on; set at the first connect. */
  protected positions: Map<number, bigint> | undefined;
  private session: Session | undefined;
  private readonly sleeper = new Sleeper();
  private readonly first = new FirstAttempt();
  private closing = false;
  private running: Promise<void> | undefined;
  private readonly queue: QueuedPublish[] = [];
  private sending = false;

  /** `address` is the --bus URL parsed at load (config/bus-address.ts). */
  constructor(address: KafkaAddress) {
    super();
    this.address = address;
  }

  connect(): Promise<void> {
    return this.first.start(() => void (this.running = this.run()));
  }

  /** Opens a session, waits for it to fail, and opens the next from the kept positions, until {@link close}. */
  private async run(): Promise<void> {
    let attempt = 0;
    while (!this.closing) {
      let session: Session;
      try {
        session = await this.openBounded();
      } catch (err) {
        const error = err instanceof BusUnavailableError ? err : new BusUnavailableError(`kafka: ${errorMessage(err)}`, { cause: err });
        this.setStatus('disconnected', error);
        this.first.settled(error);
        await this.sleeper.sleep(busRetryDelay(attempt++));
        continue;
      }
      if (this.closing) {
        await closeSession(session);
        return;
      }
      const openedAt = Date.now();
      this.session = session;
      const ready = await Promise.race([this.ready().then(() => undefined), session.ended]);
      if (ready !== undefined || this.closing) {
        // The session failed (or the bus closed) before the adapter was ready.
        this.session = undefined;
        await closeSession(session);
        if (this.closing) return;
        this.setStatus('disconnected', ready);
        this.first.settled(ready);
        await this.sleeper.sleep(busRetryDelay(attempt++));
        continue;
      }
      this.setStatus('connected');
      this.first.settled();
      const cause = await session.ended;
      this.session = undefined;
      await closeSession(session);
      if (this.closing) return;
      this.setStatus('disconnected', cause);
      // A session that fails soon after opening is retried with growing backoff, not at once.
      if (Date.now() - openedAt > STABLE_SESSION_MS) attempt = 0;
      await this.sleeper.sleep(busRetryDelay(attempt++));
    }
  }

  /** {@link open} within {@link OPEN_TIMEOUT_MS}; what it created is closed when it fails, times out or {@link close} comes first. */
  private async openBounded(): Promise<Session> {
    const clients: Closable[] = [];
    this.opening = clients;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new BusUnavailableError(`kafka: no session within ${OPEN_TIMEOUT_MS / 1000} s`)), OPEN_TIMEOUT_MS);
    });
    try {
      return await Promise.race([this.open(clients), timeout]);
    } catch (err) {
      await Promise.all(clients.map(forceClose));
      throw err;
    } finally {
      clearTimeout(timer);
      this.opening = undefined;
    }
  }

  /**
   * Connects the clients, makes sure the topic exists, and starts reading from the kept positions.
   * Each session joins a group of its own: a new one, because the broker still holds the last
   * session's member for a while after a crash or a cut link, and a join would wait for it.
   */
  private async open(clients: Closable[]): Promise<Session> {
    const { brokers, topic } = this.address;
    const groupId = `${this.id}-${++this.sessions}`;
    const base = { clientId: this.id, bootstrapBrokers: [...brokers], ...CLIENT_TIMINGS };
    const { Admin, Consumer, MessagesStreamModes, ProduceAcks, Producer } = await loadKafkaClient();
    const admin = new Admin(base);
    clients.push(admin);
    await ensureTopic(admin, topic);
    await forceClose(admin);
    // Idempotent with acks from every in-sync replica: a retried send is neither doubled nor reordered.
    const producer = new Producer({ ...base, acks: ProduceAcks.ALL, idempotent: true, autocreateTopics: false });
    const consumer = new Consumer({ ...base, groupId, ...GROUP_TIMINGS, maxWaitTime: FETCH_MAX_WAIT_MS, autocommit: false });
    clients.push(producer, consumer);
    // `connected` means publishes can go out: the producer has its connection before that.
    const metadata = (await producer.metadata({ topics: [topic] })).topics.get(topic);
    const shape = { id: metadata?.id ?? '', partitions: metadata?.partitionsCount ?? 1 };
    const ends = (await consumer.listOffsets({ topics: [topic] })).get(topic) ?? [];
    // First connect: the end of the log, unless a subclass starts elsewhere. Afterwards: where
    // this adapter stopped (a partition added meanwhile starts at its end).
    const positions = await this.startPositions(consumer, shape, ends);
    ends.forEach((end, partition) => {
      if (!positions.has(partition)) positions.set(partition, end);
    });
    const stream = await consumer.consume({
      topics: [topic],
      mode: MessagesStreamModes.MANUAL,
      // A position the log no longer has (retention, or a broker that lost its data) restarts at the end.
      fallbackMode: this.fallbackMode,
      offsets: [...positions].map(([partition, offset]) => ({ topic, partition, offset })),
      autocommit: false,
    });
    this.positions = positions;
    let fail!: (err: Error) => void;
    const ended = new Promise<Error>((resolve) => {
      fail = resolve;
      const end = (why: string) => (err?: unknown) => resolve(new BusUnavailableError(`kafka: ${why}${err instanceof Error ? `: ${errorMessage(err)}` : ''}`, { cause: err }));
      // A fetch that fails (broker gone, link cut, a silent network past the request timeout)
      // ends the stream. Broker connections closing alone do not end the session: the broker
      // closes idle ones (connections.max.idle.ms), and the clients open them again when needed.
      // `on`, not `once`: an 'error' with no listener would throw.
      stream.on('error', end('the consumer stream failed'));
      stream.once('close', end('the consumer stream closed'));
      // The consumer emits 'error' when it could not rejoin its group.
      consumer.on('error', end('the consumer left its group'));
    });
    stream.on('data', (message: Message<Buffer, Buffer, Buffer, Buffer>) => this.deliver(positions, message));
    return { producer, consumer, stream, ended, fail };
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

  /** Resolves when a new session may report `connected` (a subclass that indexes the log waits for it to catch up). */
  protected async ready(): Promise<void> {}

  /** Moves the partition's position past a record and hands it on (once: records a closing session still emits are skipped). */
  private deliver(positions: Map<number, bigint>, message: Message<Buffer, Buffer, Buffer, Buffer>): void {
    const position = positions.get(message.partition) ?? 0n;
    if (this.closing || position > message.offset) return;
    positions.set(message.partition, message.offset + 1n);
    this.record(message, position);
  }

  /**
   * One record, in the log's order per partition; `expected` is the offset the partition's
   * position was at (a record with a higher one means the consumer skipped records the log no
   * longer holds). Hands the record on when its bus topic is subscribed.
   */
  protected record(message: Message<Buffer, Buffer, Buffer, Buffer>, _expected: bigint): void {
    const topic = message.key?.toString();
    if (topic !== undefined && this.subscribed.has(topic)) this.handler(topic, message.value);
  }

  async publish(topic: string, payload: Buffer): Promise<void> {
    await this.produce({ topic: this.address.topic, key: Buffer.from(topic), value: payload });
  }

  /**
   * Queues one record for the broker; resolves once it is written, with its offset when the
   * record names its partition (a subclass that needs offsets places its records itself).
   */
  protected produce(message: MessageToProduce<Buffer, Buffer, Buffer, Buffer>): Promise<bigint | undefined> {
    // The client would queue and retry while the broker is away; the contract says reject instead.
    if (!this.session || !this.connected) return Promise.reject(new BusUnavailableError(`kafka is ${this.status}`));
    if (this.queue.length >= MAX_QUEUED_PUBLISHES) return Promise.reject(new BusUnavailableError(`kafka has ${this.queue.length} publishes waiting for the broker`));
    return new Promise((resolve, reject) => {
      this.queue.push({ message, resolve, reject });
      if (!this.sending) void this.sendQueued();
    });
  }

  /**
   * One produce request in flight at a time, carrying every publish queued meanwhile: the order of
   * publishes is the order in the log, and a burst costs a few requests, not one each. (Concurrent
   * sends on an idempotent producer of @platformatic/kafka 1.x all resolve while only one of them
   * is written: platformatic/kafka#326.)
   */
  private async sendQueued(): Promise<void> {
    this.sending = true;
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0, batchLength(this.queue));
      const session = this.session;
      try {
        if (!session || !this.connected) throw new BusUnavailableError(`kafka is ${this.status}`);
        const result = await session.producer.send({ messages: batch.map((p) => p.message) });
        resolveWithOffsets(batch, result.offsets ?? []);
      } catch (err) {
        const error = err instanceof BusUnavailableError ? err : new BusUnavailableError(`kafka publish failed: ${errorMessage(err)}`, { cause: err });
        for (const p of batch) p.reject(error);
        // The producer's link failed (not a record the broker refused): start a new session with a
        // new producer rather than go on with one whose sequence numbers may be out of step.
        if (session && isLinkFailure(err)) session.fail(error);
      }
    }
    this.sending = false;
  }

  async subscribe(topic: string): Promise<void> {
    if (!this.connected) throw new BusUnavailableError(`kafka is ${this.status}`);
    this.subscribed.add(topic);
  }

  async unsubscribe(topic: string): Promise<void> {
    this.subscribed.delete(topic);
  }

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    this.setStatus('closed');
    this.first.settled(new BusUnavailableError('kafka bus closed'));
    this.sleeper.wake();
    const session = this.session;
    this.session = undefined;
    await Promise.all([session ? closeSession(session) : undefined, ...(this.opening ?? []).map(forceClose)]);
    await this.running;
  }
}

/** Creates the bus topic with the broker's defaults (num.partitions, default.replication.factor) unless it exists. */
async function ensureTopic(admin: Admin, topic: string): Promise<void> {
  const existing = await admin.listTopics();
  if (existing.includes(topic)) return;
  try {
    await admin.createTopics({ topics: [topic], partitions: -1, replicas: -1 });
  } catch (err) {
    // Another node created it first.
    if (!/TOPIC_ALREADY_EXISTS|already exists/i.test(`${errorMessage(err)} ${JSON.stringify((err as { errors?: unknown }).errors ?? '')}`)) throw err;
  }
}

async function closeSession(session: Session): Promise<void> {
  await session.stream.close().catch(() => {});
  // Leaving the group at once, not after its session timeout; the producer's pending sends fail.
  await Promise.all([forceClose(session.consumer), forceClose(session.producer)]);
}

/** How many of the queued publishes, from the first, go in the next produce request (at least one). */
function batchLength(queue: readonly QueuedPublish[]): number {
  let bytes = 0;
  let n = 0;
  while (n < queue.length && n < MAX_BATCH) {
    const { key, value } = queue[n]!.message;
    bytes += (key?.length ?? 0) + (value?.length ?? 0);
    if (n > 0 && bytes > MAX_BATCH_BYTES) break;
    n++;
  }
  return n;
}

/**
 * Resolves each publish of a written batch. The broker answers one base offset per partition;
 * the records of a partition sit in the batch's order after it, so a record that named its
 * partition gets base + the number of that partition's records before it in the batch.
 */
function resolveWithOffsets(batch: readonly QueuedPublish[], offsets: ReadonlyArray<{ topic: string; partition: number; offset: bigint }>): void {
  const next = new Map<string, bigint>();
  for (const { topic, partition, offset } of offsets) next.set(`${topic}:${partition}`, offset);
  for (const p of batch) {
    const { topic, partition } = p.message;
    const key = `${topic}:${partition}`;
    const offset = partition === undefined ? undefined : next.get(key);
    if (offset !== undefined) next.set(key, offset + 1n);
    p.resolve(offset);
  }
}

export type Closable = Producer | Consumer | Admin;

/** True for a lost or silent connection, also when the client wraps it (retries, causes). */
export function isLinkFailure(err: unknown, depth = 0): boolean {
  const client = loadedKafkaClient(); // not loaded yet: the error is none of its
  if (client && (err instanceof client.NetworkError || err instanceof client.TimeoutError)) return true;
  if (depth > 4 || typeof err !== 'object' || err === null) return false;
  const { errors, cause } = err as { errors?: unknown; cause?: unknown };
  return (Array.isArray(errors) && errors.some((e) => isLinkFailure(e, depth + 1))) || (cause !== undefined && isLinkFailure(cause, depth + 1));
}

/** Closes a client without waiting for what it has in flight; never rejects. */
export function forceClose(client: Closable): Promise<void> {
  return new Promise((resolve) => {
    // A client exists only once the module is loaded.
    if (client instanceof loadedKafkaClient()!.Admin) client.close(() => resolve());
    else client.close(true, () => resolve());
  });
}
