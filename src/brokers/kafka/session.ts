/**
 * The Kafka session kit: what every Kafka client of Fanout (the bus, the history log, presence
 * and the ingest) needs to talk to the broker, written once.
 *
 * - {@link SessionLoop}: open a session, live with it until it fails, close it and open the next
 *   with backoff, until closed; the open is bounded ({@link OPEN_TIMEOUT_MS}) and what an
 *   abandoned open created is closed.
 * - {@link openSession}: a producer and a consumer of a group of its own, the topic made sure of,
 *   reading from the positions the caller keeps; its `ended` settles on the first failure.
 * - {@link SingleFlightProducer}: one produce request in flight at a time (the client's
 *   concurrent-send bug, below), batched, bounded.
 * - {@link SharedEnds}: ListOffsets requests shared by the calls that come while one is in flight.
 * - {@link createTopic}: the topic, created unless it exists (another node may create it first).
 */
import type { Admin, Consumer, Message, MessageToProduce, MessagesStream, Producer } from '@platformatic/kafka';
import { BusUnavailableError, errorMessage } from '../../errors.js';
import { busRetryDelay, Sleeper } from '../../stores/retry.js';
import { forceClose, isLinkFailure, kafkaErrorMessage, loadKafkaClient, type Closable } from './client.js';
import { lingerFetches } from './fetch-linger.js';

/**
 * Client timings: a refused or closed connection is seen within about a second (three tries 250 ms
 * apart); a silent one when three requests in a row got no answer within 8 s (longer than a
 * group join, which waits the broker's group.initial.rebalance.delay.ms, 3 s by default).
 */
export const CLIENT_TIMINGS = Object.freeze({ connectTimeout: 2000, requestTimeout: 8000, timeout: 5000, retries: 2, retryDelay: 250 });
/** A session that lasted this long resets the reconnect backoff. */
export const STABLE_SESSION_MS = 10_000;
/** An attempt to open a session that has not succeeded by then is abandoned and retried. */
export const OPEN_TIMEOUT_MS = 15_000;
/**
 * The group's liveness: each session's group is dropped by the broker this long after the
 * session ends without leaving (a crash); the broker's group.min.session.timeout.ms is 6 s.
 */
export const GROUP_TIMINGS = Object.freeze({ sessionTimeout: 10_000, rebalanceTimeout: 10_000, heartbeatInterval: 3000 });
/** A fetch returns as soon as records arrive; with none, the broker answers empty after this long. */
export const FETCH_MAX_WAIT_MS = 500;

/** At most this many records wait for the broker; more are refused (BusUnavailableError), so a slow broker cannot grow memory without bound. */
const MAX_QUEUED = 10_000;
/**
 * At most this many records, and bytes, in one produce request (a record larger goes alone). The
 * broker refuses a whole record batch larger than the topic's max.message.bytes (1 MiB by default).
 */
const MAX_BATCH = 500;
const MAX_BATCH_BYTES = 512 * 1024;

export type KafkaRecord = Message<Buffer, Buffer, Buffer, Buffer>;
export type RecordToProduce = MessageToProduce<Buffer, Buffer, Buffer, Buffer>;

/** What a session learned of the Kafka topic when it opened. */
export interface TopicShape {
  /** The topic's id: a topic deleted and created again has another. */
  readonly id: string;
  readonly partitions: number;
}

/** One connected run: the clients, and a promise that settles once any of them fails. */
export interface Session {
  readonly producer: Producer;
  readonly consumer: Consumer;
  readonly stream: MessagesStream<Buffer, Buffer, Buffer, Buffer>;
  /** Settles with the first failure: the stream's, the consumer's, or one {@link Session.fail} reports. */
  readonly ended: Promise<Error>;
  readonly fail: (err: Error) => void;
  readonly hurry: () => void; // ends a fetch linger under way (SessionSpec.urgent)
}

/** What {@link openSession} opens; `label`: the first words of every error it reports (`kafka`, `kafka presence`). */
export interface SessionSpec {
  readonly label: string;
  readonly brokers: readonly string[];
  readonly topic: string;
  readonly clientId: string;
  /** A group of this session's own: a new one each time, because the broker still holds the last session's member for a while after a crash or a cut link, and a join would wait for it. */
  readonly groupId: string;
  /** Makes sure the topic exists (see {@link createTopic}). */
  readonly ensureTopic: (admin: Admin) => Promise<void>;
  /** Where a position the log no longer has (retention, or a broker that lost its data) restarts. */
  readonly fallbackMode: 'latest' | 'earliest';
  /** The position to read every partition from, given the topic's shape and each partition's end offset now. */
  readonly positions: (consumer: Consumer, shape: TopicShape, ends: readonly bigint[]) => Promise<Map<number, bigint>>;
  /** Told the positions and ends once reading starts, before the first record. */
  readonly started: (positions: Map<number, bigint>, ends: readonly bigint[]) => void;
  readonly urgent?: () => boolean; // the owner waits for records: no fetch linger (it calls `hurry` as it starts to wait)
  /** Each record read, in the log's order per partition, with the positions given to `started`. */
  readonly onRecord: (positions: Map<number, bigint>, message: KafkaRecord) => void;
}

/**
 * Connects the clients, makes sure the topic exists, and starts reading from the caller's
 * positions. `clients` gets each client as it is made, for the bounded open to close.
 */
export async function openSession(spec: SessionSpec, clients: Closable[]): Promise<Session> {
  const { brokers, topic, label } = spec;
  const base = { clientId: spec.clientId, bootstrapBrokers: [...brokers], ...CLIENT_TIMINGS };
  const { Admin, Consumer, MessagesStreamModes, ProduceAcks, Producer } = await loadKafkaClient();
  const admin = new Admin(base);
  clients.push(admin);
  await spec.ensureTopic(admin);
  await forceClose(admin);
  // Idempotent with acks from every in-sync replica: a retried send is neither doubled nor reordered.
  const producer = new Producer({ ...base, acks: ProduceAcks.ALL, idempotent: true, autocreateTopics: false });
  const consumer = new Consumer({ ...base, groupId: spec.groupId, ...GROUP_TIMINGS, maxWaitTime: FETCH_MAX_WAIT_MS, autocommit: false });
  clients.push(producer, consumer);
  // The producer has its connection before the session counts as open: writes can go out.
  const metadata = (await producer.metadata({ topics: [topic] })).topics.get(topic);
  const shape = { id: metadata?.id ?? '', partitions: metadata?.partitionsCount ?? 1 };
  const ends = await listEnds(consumer, topic);
  const positions = await spec.positions(consumer, shape, ends);
  const stream = await consumer.consume({
    topics: [topic],
    mode: MessagesStreamModes.MANUAL,
    fallbackMode: spec.fallbackMode,
    offsets: [...positions].map(([partition, offset]) => ({ topic, partition, offset })),
    autocommit: false,
  });
  spec.started(positions, ends);
  let fail!: (err: Error) => void;
  const ended = new Promise<Error>((resolve) => {
    fail = resolve;
    const end = (why: string) => (err?: unknown) => resolve(new BusUnavailableError(`${label}: ${why}${err instanceof Error ? `: ${kafkaErrorMessage(err)}` : ''}`, { cause: err }));
    // A fetch that fails (broker gone, link cut, a silent network past the request timeout)
    // ends the stream. Broker connections closing alone do not end the session: the broker
    // closes idle ones (connections.max.idle.ms), and the clients open them again when needed.
    // `on`, not `once`: an 'error' with no listener would throw.
    stream.on('error', end('the consumer stream failed'));
    stream.once('close', end('the consumer stream closed'));
    // The consumer emits 'error' when it could not rejoin its group.
    consumer.on('error', end('the consumer left its group'));
  });
  stream.on('data', (message: KafkaRecord) => spec.onRecord(positions, message));
  const linger = lingerFetches(stream, spec.urgent); // one fetch per FETCH_LINGER_MS under a steady flow, not one per record
  void ended.then(linger.stop); // the stream's close or error ends the session too
  return { producer, consumer, stream, ended, fail, hurry: linger.hurry };
}

/** Closes a session's stream and clients. */
async function closeSession(session: Session): Promise<void> {
  await session.stream.close().catch(() => {});
  // Leaving the group at once, not after its session timeout; the producer's pending sends fail.
  await Promise.all([forceClose(session.consumer), forceClose(session.producer)]);
}

/** How a session ended, as {@link SessionLoop}'s `live` reports it; `usable` false: it never became usable (its length does not reset the backoff). */
export interface SessionEnd {
  readonly cause: Error;
  readonly usable: boolean;
}

/** What a {@link SessionLoop} does with its sessions; `label`: the first words of the open's timeout error. */
export interface LoopHooks {
  readonly label: string;
  /** Opens a session (e.g. with {@link openSession}); `clients` gets each client as it is made (closed if the open is abandoned). */
  readonly open: (clients: Closable[]) => Promise<Session>;
  /** Uses an open session until it ends (or the loop closes); resolves with why it ended. The loop closes it then. */
  readonly live: (session: Session) => Promise<SessionEnd>;
  /** Told of an open that failed (`open`) or a session that ended (`session`), unless the loop is closing. */
  readonly failed: (err: Error, during: 'open' | 'session') => void;
}

/**
 * Opens a session, lives with it until it fails, and opens the next, until {@link stop}: a
 * session that fails soon after opening is retried with growing backoff ({@link busRetryDelay}),
 * not at once; one that lasted {@link STABLE_SESSION_MS} resets it.
 */
export class SessionLoop {
  private stopped = false;
  private readonly sleeper = new Sleeper();
  /** The clients of the session being opened, for {@link closed}. */
  private opening: Closable[] | undefined;
  private running: Promise<void> | undefined;

  constructor(private readonly hooks: LoopHooks) {}

  /** True once {@link stop} was called. */
  get closing(): boolean {
    return this.stopped;
  }

  /** Starts the loop unless it runs or was stopped. */
  start(): void {
    if (this.running || this.closing) return;
    this.running = this.run();
  }

  private async run(): Promise<void> {
    let attempt = 0;
    while (!this.closing) {
      let session: Session;
      try {
        session = await this.openBounded();
      } catch (err) {
        if (this.closing) return;
        this.hooks.failed(err instanceof Error ? err : new Error(String(err)), 'open');
        await this.sleeper.sleep(busRetryDelay(attempt++));
        continue;
      }
      if (this.closing) {
        await closeSession(session);
        return;
      }
      const openedAt = Date.now();
      const end = await this.hooks.live(session);
      await closeSession(session);
      if (this.closing) return;
      this.hooks.failed(end.cause, 'session');
      if (end.usable && Date.now() - openedAt > STABLE_SESSION_MS) attempt = 0;
      await this.sleeper.sleep(busRetryDelay(attempt++));
    }
  }

  /** `open` within {@link OPEN_TIMEOUT_MS}; what it created is closed when it fails, times out or {@link closed} comes first. */
  private async openBounded(): Promise<Session> {
    const clients: Closable[] = [];
    this.opening = clients;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new BusUnavailableError(`${this.hooks.label}: no session within ${OPEN_TIMEOUT_MS / 1000} s`)), OPEN_TIMEOUT_MS);
    });
    try {
      return await Promise.race([this.hooks.open(clients), timeout]);
    } catch (err) {
      await Promise.all(clients.map(forceClose));
      throw err;
    } finally {
      clearTimeout(timer);
      this.opening = undefined;
    }
  }

  /** Stops the loop: no session opens after this, and a backoff wait ends now. */
  stop(): void {
    this.stopped = true;
    this.sleeper.wake();
  }

  /** After {@link stop}: closes `current` (the session the owner held) and an open under way, and waits for the loop to end. */
  async closed(current: Session | undefined): Promise<void> {
    await Promise.all([current === undefined ? undefined : closeSession(current), ...(this.opening ?? []).map(forceClose)]);
    await this.running;
  }
}

interface Queued {
  readonly record: RecordToProduce;
  /** With the record's offset when it named its partition (see {@link resolveWithOffsets}). */
  readonly resolve: (offset: bigint | undefined) => void;
  readonly reject: (err: Error) => void;
}

/**
 * What a {@link SingleFlightProducer} sends on (`session`: undefined while there is none to use)
 * and its errors: `unavailable` with no session, `full` with `waiting` records queued, `failed`
 * for a send that failed.
 */
export interface ProducerHooks {
  readonly session: () => Session | undefined;
  readonly unavailable: () => BusUnavailableError;
  readonly full: (waiting: number) => BusUnavailableError;
  readonly failed: (err: unknown) => BusUnavailableError;
}

/**
 * One produce request in flight at a time, carrying every record queued meanwhile: the order of
 * records is the order in the log, and a burst costs a few requests, not one each. (Concurrent
 * sends on an idempotent producer of @platformatic/kafka 1.x all resolve while only one of them
 * is written: platformatic/kafka#326.)
 */
export class SingleFlightProducer {
  private readonly queue: Queued[] = [];
  private sending = false;

  constructor(private readonly hooks: ProducerHooks) {}

  /**
   * Queues the records, in order; resolves once the broker has them all, with each one's offset
   * when it named its partition. Refuses at once when the queue is full.
   */
  send(records: readonly RecordToProduce[]): Promise<Array<bigint | undefined>> {
    if (this.queue.length + records.length > MAX_QUEUED) return Promise.reject(this.hooks.full(this.queue.length));
    const done = Promise.all(records.map((record) => new Promise<bigint | undefined>((resolve, reject) => this.queue.push({ record, resolve, reject }))));
    if (!this.sending) void this.sendQueued();
    return done;
  }

  /** Rejects every record still waiting (the owner closes). */
  rejectAll(err: Error): void {
    for (const q of this.queue.splice(0)) q.reject(err);
  }

  private async sendQueued(): Promise<void> {
    this.sending = true;
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0, batchLength(this.queue));
      let session: Session | undefined;
      try {
        session = this.hooks.session();
        if (!session) throw this.hooks.unavailable();
        const result = await session.producer.send({ messages: batch.map((q) => q.record) });
        resolveWithOffsets(batch, result.offsets ?? []);
      } catch (err) {
        const error = err instanceof BusUnavailableError ? err : this.hooks.failed(err);
        for (const q of batch) q.reject(error);
        // The producer's link failed (not a record the broker refused): start a new session with a
        // new producer rather than go on with one whose sequence numbers may be out of step.
        if (session && isLinkFailure(err)) session.fail(error);
      }
    }
    this.sending = false;
  }
}

/** How many of the queued records, from the first, go in the next produce request (at least one). */
function batchLength(queue: readonly Queued[]): number {
  let bytes = 0;
  let n = 0;
  while (n < queue.length && n < MAX_BATCH) {
    const { key, value } = queue[n]!.record;
    bytes += (key?.length ?? 0) + (value?.length ?? 0);
    if (n > 0 && bytes > MAX_BATCH_BYTES) break;
    n++;
  }
  return n;
}

/**
 * Resolves each record of a written batch. The broker answers one base offset per partition;
 * the records of a partition sit in the batch's order after it, so a record that named its
 * partition gets base + the number of that partition's records before it in the batch.
 */
function resolveWithOffsets(batch: readonly Queued[], offsets: ReadonlyArray<{ topic: string; partition: number; offset: bigint }>): void {
  const next = new Map<string, bigint>();
  for (const { topic, partition, offset } of offsets) next.set(`${topic}:${partition}`, offset);
  for (const q of batch) {
    const { topic, partition } = q.record;
    const key = `${topic}:${partition}`;
    const offset = partition === undefined ? undefined : next.get(key);
    if (offset !== undefined) next.set(key, offset + 1n);
    q.resolve(offset);
  }
}

/** Each partition's end offset (or, with `timestamp`, the first offset at or after it; -2n: the log's start). */
export async function listEnds(consumer: Consumer, topic: string, timestamp?: bigint): Promise<bigint[]> {
  const offsets = await consumer.listOffsets(timestamp === undefined ? { topics: [topic] } : { topics: [topic], timestamp });
  return offsets.get(topic) ?? [];
}

/**
 * A topic's end offsets as the broker says after the call began, shared: at most one request in
 * flight and one queued, however many callers ask at once. A call that finds a request in flight
 * waits for the next, since the one in flight may have been answered before a record acked just
 * before the call.
 */
export class SharedEnds {
  private inFlight: Promise<readonly bigint[]> | undefined;
  private queued: Promise<readonly bigint[]> | undefined;

  /** `ask` makes the request (the caller's consumer, its timeout and wording); the queued request uses the `ask` of the call that queued it. */
  latest(ask: () => Promise<readonly bigint[]>): Promise<readonly bigint[]> {
    if (this.inFlight === undefined) return this.start(ask);
    this.queued ??= this.inFlight.catch(() => undefined).then(() => {
      this.queued = undefined;
      return this.start(ask);
    });
    return this.queued;
  }

  private start(ask: () => Promise<readonly bigint[]>): Promise<readonly bigint[]> {
    const request = ask().finally(() => {
      if (this.inFlight === request) this.inFlight = undefined;
    });
    this.inFlight = request;
    return request;
  }
}

/** How {@link createTopic} makes a missing topic: the broker's defaults (num.partitions) unless said. */
export interface TopicSpec {
  readonly partitions?: number;
  readonly configs?: ReadonlyArray<{ readonly name: string; readonly value: string }>;
}

/**
 * Creates the topic (replicas: the broker's default.replication.factor) unless it exists; true
 * when this call created it, false when it existed (also when another node created it first).
 */
export async function createTopic(admin: Admin, topic: string, spec: TopicSpec = {}): Promise<boolean> {
  if ((await admin.listTopics()).includes(topic)) return false;
  try {
    await admin.createTopics({ topics: [topic], partitions: spec.partitions ?? -1, replicas: -1, ...(spec.configs ? { configs: [...spec.configs] } : {}) });
    return true;
  } catch (err) {
    // Another node created it first.
    if (!/TOPIC_ALREADY_EXISTS|already exists/i.test(`${errorMessage(err)} ${JSON.stringify((err as { errors?: unknown }).errors ?? '')}`)) throw err;
    return false;
  }
}
