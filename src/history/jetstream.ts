/**
 * Channel history on NATS JetStream (`--history nats://…`). Layout and the recovery rule are in
 * jetstream-layout.ts; docs/brokers.md explains sizing.
 *
 * Offsets are the stream's sequence numbers, so offsets, history and order come from JetStream
 * itself: a publish is a JetStream publish on the channel's subject and the ack's sequence is the
 * offset. Nothing is published on core NATS: the message frame needs that offset, known only
 * after the ack, and two nodes publishing on one channel would interleave out of order. Instead
 * every node runs one consumer over the whole stream ({@link JetStreamLog}) and turns each stored
 * message into the channel's bus payload (its sequence and the stream's epoch spliced in), handed
 * to the node's topic router as if a bus had brought it. Every node therefore sees every channel
 * in stream order, its own messages included, which is the store's guarantee (history/store.ts).
 * Fences and presence events are stored too (one control subject), so they take their place in
 * the same order: a read with a fence publishes the fence, then reads the channel's messages
 * older than the fence's sequence.
 *
 * Outage: while the connection is down publishes and reads reject with BusUnavailableError and
 * the link reports `disconnected` (readiness follows). After a reconnect the stream is ensured
 * again and the consumer is created again from the sequence after the last one delivered, so a
 * node misses nothing the stream still holds.
 */
import {
  AckPolicy,
  connect,
  ConsumerEvents,
  DeliverPolicy,
  DiscardPolicy,
  Events,
  headers,
  nanos,
  RetentionPolicy,
  StorageType,
  type ConsumerMessages,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
  type NatsConnection,
  type StreamConfig,
} from 'nats';
import { BaseBus } from '../bus/bus.js';
import { natsConnectOptions } from '../bus/nats.js';
import { busRetryDelay, FirstAttempt, Sleeper } from '../bus/retry.js';
import type { NatsAddress } from '../config/bus-address.js';
import { BusUnavailableError, ConfigError, errorMessage } from '../errors.js';
import type { Logger } from '../logger.js';
import { buildMessagePayload } from '../protocol/message-frame.js';
import { channelOfSubject, channelSubject, completeAfter, streamEpoch, streamLayout, type StreamLayout } from './jetstream-layout.js';
import { latestPage } from './page.js';
import type { ChannelPosition, ChannelStore, OutgoingMessage, ReadOptions, ReadResult, StoredMessage } from './store.js';

/** Header naming the node that published a message (the envelope's origin). */
const ORIGIN_HEADER = 'Fanout-Origin';
/** Header naming the bus topic of a control message (fence, presence event). */
const TOPIC_HEADER = 'Fanout-Topic';
/** How long a request to JetStream (publish, read) may take before it counts as unavailable. */
const REQUEST_TIMEOUT_MS = 3000;
/** Pull expiry of the live consumer; its idle heartbeat is half of it. */
const PULL_EXPIRES_MS = 4000;
/** A consumer nobody pulls from is removed by the server after this long. */
const INACTIVE_MS = 30_000;

export interface JetStreamLogOptions {
  readonly address: NatsAddress;
  /** --bus-prefix: names the stream and its subjects. */
  readonly prefix: string;
  readonly nodeId: string;
  /** --history-size: the stream's max_msgs_per_subject (at least 1: a message must be stored to be delivered). */
  readonly historySize: number;
  /** --history-ttl in seconds: the stream's max_age (0: no age limit). */
  readonly historyTtl: number;
  /** A channel's bus topic (the channel layer's naming). */
  readonly topicOf: (channel: string) => string;
  /** Envelope header + message head of a message of `channel` (protocol/message-frame.ts). */
  readonly channelHead: (channel: string, origin: string, publishedAt: number) => Buffer;
  readonly logger: Logger;
}

interface Connected {
  readonly nc: NatsConnection;
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
}

/**
 * The JetStream side of a node: one connection, the stream, and the live consumer, seen by the
 * node as a {@link Bus} (the route channel topics take). `publish` stores a control message;
 * `subscribe` only says which topics this node wants built (the others are skipped unbuilt).
 */
export class JetStreamLog extends BaseBus {
  readonly kind = 'jetstream';
  readonly layout: StreamLayout;
  /** The stream's epoch, known once connected. */
  epoch = '';
  private conn: Connected | undefined;
  private readonly wanted = new Set<string>();
  private readonly sleeper = new Sleeper();
  private readonly first = new FirstAttempt();
  private closing = false;
  /** The next stream sequence the live consumer must deliver; 0 before the first start. */
  private nextSeq = 0;
  private lastDelivery = 0;
  private serial = 0;
  private messages: ConsumerMessages | undefined;
  private warnedDisabled = false;
  private resuming: Promise<void> | undefined;

  constructor(private readonly options: JetStreamLogOptions) {
    super();
    this.layout = streamLayout(options.prefix);
  }

  /** max_msgs_per_subject. */
  get perSubject(): number {
    return Math.max(1, this.options.historySize);
  }

  connect(): Promise<void> {
    return this.first.start(() => void this.run());
  }

  /** Connects, then keeps the stream and the consumer up after every reconnect, until {@link close}. */
  private async run(): Promise<void> {
    let attempt = 0;
    while (!this.closing) {
      let nc: NatsConnection;
      try {
        nc = await connect(natsConnectOptions(this.options.address, 'fanout-history'));
      } catch (err) {
        const message = errorMessage(err);
        const error = /authorization violation|authentication/i.test(message)
          ? new ConfigError('--history', 'the NATS server refused the credentials (Authorization Violation); give the right ones in the URL')
          : new BusUnavailableError(`jetstream: ${message}`, { cause: err });
        this.setStatus('disconnected', error);
        this.first.settled(error);
        if (error instanceof ConfigError) return;
        await this.sleeper.sleep(busRetryDelay(attempt++));
        continue;
      }
      if (this.closing) {
        await nc.close().catch(() => {});
        return;
      }
      attempt = 0;
      void this.watch(nc);
      await this.resume(nc);
      const err = await nc.closed();
      this.conn = undefined;
      this.stopConsumer();
      if (!this.closing) this.setStatus('disconnected', err ?? new Error('nats connection closed'));
    }
  }

  private async watch(nc: NatsConnection): Promise<void> {
    for await (const s of nc.status()) {
      if (this.closing) return;
      if (s.type === Events.Disconnect) {
        this.conn = undefined;
        this.stopConsumer();
        this.setStatus('disconnected', new Error(`nats disconnected from ${String(s.data)}`));
      } else if (s.type === Events.Reconnect) {
        void this.resume(nc);
      }
    }
  }

  /**
   * Ensures the stream and starts the live consumer on `nc`, retrying while JetStream is not
   * ready (a restarted server answers before its streams are loaded); then `connected`.
   */
  private resume(nc: NatsConnection): Promise<void> {
    // One at a time: a reconnect during a resync (or the reverse) joins the attempt in flight.
    this.resuming ??= this.resumeNow(nc).finally(() => (this.resuming = undefined));
    return this.resuming;
  }

  private async resumeNow(nc: NatsConnection): Promise<void> {
    for (let attempt = 0; !this.closing && !nc.isClosed(); attempt++) {
      try {
        const js = nc.jetstream({ timeout: REQUEST_TIMEOUT_MS });
        const jsm = await nc.jetstreamManager({ timeout: REQUEST_TIMEOUT_MS });
        const lastSeq = await this.ensureStream(jsm);
        if (this.nextSeq === 0) this.nextSeq = lastSeq + 1;
        const conn: Connected = { nc, js, jsm };
        this.conn = conn;
        await this.startConsumer(conn);
        this.setStatus('connected');
        this.first.settled();
        return;
      } catch (err) {
        this.conn = undefined;
        const message = errorMessage(err);
        this.first.settled(new BusUnavailableError(`jetstream: ${message}`, { cause: err }));
        if (/jetstream not enabled/i.test(message) && !this.warnedDisabled) {
          this.warnedDisabled = true;
          this.options.logger.warn({ servers: this.options.address.describe }, '--history nats://: JetStream is not enabled on the NATS server (start it with -js); retrying, /readyz says 503 until then');
        }
        this.options.logger.debug({ err: message }, 'jetstream not ready; retrying');
        await this.sleeper.sleep(busRetryDelay(attempt));
      }
    }
  }

  /** Creates the stream, or updates its limits to this node's flags; returns its last sequence. */
  private async ensureStream(jsm: JetStreamManager): Promise<number> {
    const { stream, subjects } = this.layout;
    const limits: Partial<StreamConfig> = {
      subjects: [subjects],
      max_msgs_per_subject: this.perSubject,
      max_age: nanos(this.options.historyTtl * 1000),
      discard: DiscardPolicy.Old,
    };
    let info;
    try {
      info = await jsm.streams.info(stream);
      const c = info.config;
      if (c.max_msgs_per_subject !== limits.max_msgs_per_subject || c.max_age !== limits.max_age || c.subjects?.[0] !== subjects) {
        info = await jsm.streams.update(stream, limits);
      }
    } catch (err) {
      if (!/stream not found/i.test(errorMessage(err))) throw err;
      info = await jsm.streams.add({ name: stream, retention: RetentionPolicy.Limits, storage: StorageType.File, num_replicas: 1, ...limits });
    }
    const epoch = streamEpoch(stream, info.created);
    if (this.epoch !== '' && epoch !== this.epoch) {
      // The stream is new (deleted, or the server lost it): its sequences start over.
      this.options.logger.warn({ stream }, 'the JetStream history stream was created again; offsets start over in a new epoch');
      this.nextSeq = info.state.last_seq + 1;
    }
    this.epoch = epoch;
    return info.state.last_seq;
  }

  /** (Re)creates the live consumer from {@link nextSeq}; whatever the previous one still hands over is ignored. */
  private async startConsumer(conn: Connected): Promise<void> {
    this.stopConsumer();
    const serial = ++this.serial;
    const info = await conn.jsm.consumers.add(this.layout.stream, {
      ack_policy: AckPolicy.None,
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: this.nextSeq,
      filter_subject: this.layout.subjects,
      mem_storage: true,
      inactive_threshold: nanos(INACTIVE_MS),
    });
    const consumer = await conn.js.consumers.get(this.layout.stream, info.name);
    if (serial !== this.serial) return;
    this.lastDelivery = 0;
    const messages = await consumer.consume({ max_messages: 512, expires: PULL_EXPIRES_MS, callback: (m) => this.fromStream(m, serial, conn) });
    this.messages = messages;
    void this.watchConsumer(messages, serial, conn);
  }

  /** The server lost the consumer (restarted, or removed it after a silence) while the connection stayed: start again. */
  private async watchConsumer(messages: ConsumerMessages, serial: number, conn: Connected): Promise<void> {
    for await (const s of await messages.status()) {
      if (serial !== this.serial || this.conn !== conn) return;
      if (s.type === ConsumerEvents.StreamNotFound) return this.resync(conn);
      const lost = s.type === ConsumerEvents.ConsumerDeleted || s.type === ConsumerEvents.ConsumerNotFound || (s.type === ConsumerEvents.HeartbeatsMissed && Number(s.data) >= 2);
      if (lost) {
        this.options.logger.debug({ event: s.type }, 'jetstream consumer lost; creating it again');
        await this.startConsumer(conn).catch(() => this.resync(conn));
        return;
      }
    }
  }

  private stopConsumer(): void {
    this.serial++;
    this.messages?.stop();
    this.messages = undefined;
  }

  /**
   * The stream is gone or is another one (deleted, created again) while connected: report
   * `disconnected`, then ensure it and start over as after a reconnect (a new epoch if it is new,
   * which the channel layer's catch-up turns into `recovered:false` for the subscribers).
   */
  private resync(conn: Connected): void {
    if (this.conn !== conn) return;
    this.conn = undefined;
    this.stopConsumer();
    this.setStatus('disconnected', new Error('the JetStream history stream changed'));
    void this.resume(conn.nc);
  }

  /** One stored message, in stream order: build its bus payload if this node wants its topic. */
  private fromStream(m: JsMsg, serial: number, conn: Connected): void {
    if (serial !== this.serial) return;
    if (m.info.deliverySequence !== this.lastDelivery + 1) {
      // A pull response was lost: start over from the first sequence not delivered.
      if (this.conn === conn) void this.startConsumer(conn).catch(() => {});
      return;
    }
    this.lastDelivery = m.info.deliverySequence;
    if (m.seq < this.nextSeq) return;
    this.nextSeq = m.seq + 1;
    const data = Buffer.from(m.data.buffer, m.data.byteOffset, m.data.byteLength);
    if (m.subject === this.layout.control) {
      const topic = m.headers?.get(TOPIC_HEADER);
      if (topic && this.wanted.has(topic)) this.handler(topic, data);
      return;
    }
    const channel = channelOfSubject(this.layout, m.subject);
    if (channel === undefined) return;
    const topic = this.options.topicOf(channel);
    if (!this.wanted.has(topic)) return;
    let head: Buffer;
    try {
      head = this.options.channelHead(channel, m.headers?.get(ORIGIN_HEADER) ?? '', m.info.timestampNanos / 1e6);
    } catch {
      return;
    }
    this.handler(topic, buildMessagePayload(head, m.seq, this.epoch, data.toString('utf8')));
  }

  /** The connection, or BusUnavailableError while there is none. */
  connection(): Connected {
    const conn = this.conn;
    if (!conn || !this.connected) throw new BusUnavailableError(`jetstream is ${this.status}`);
    return conn;
  }

  /** Stores `data` on `subject`; resolves with its sequence. */
  async append(subject: string, data: Buffer | string, header: { readonly name: string; readonly value: string }): Promise<number> {
    const conn = this.connection();
    const h = headers();
    h.set(header.name, header.value);
    try {
      const ack = await conn.js.publish(subject, typeof data === 'string' ? Buffer.from(data) : data, { headers: h });
      return ack.seq;
    } catch (err) {
      // Nobody stores the subject: the stream is gone.
      if (/no responders|503/i.test(errorMessage(err))) this.resync(conn);
      throw unavailable(err);
    }
  }

  /** A control message (fence, presence event) for `topic`, in stream order. */
  async publish(topic: string, payload: Buffer): Promise<void> {
    await this.appendControl(topic, payload);
  }

  appendControl(topic: string, payload: Buffer): Promise<number> {
    return this.append(this.layout.control, payload, { name: TOPIC_HEADER, value: topic });
  }

  /** Messages of `topic` are built for this node from now on (the consumer runs whenever connected). */
  async subscribe(topic: string): Promise<void> {
    this.connection();
    this.wanted.add(topic);
  }

  async unsubscribe(topic: string): Promise<void> {
    this.wanted.delete(topic);
  }

  /** Every retained message of `subject` older than `bound`, oldest first (at most max_msgs_per_subject). */
  async messagesOf(subject: string, bound: number): Promise<StoredMessage[]> {
    const { js, jsm } = this.connection();
    const { stream } = this.layout;
    let last: number;
    try {
      last = (await jsm.streams.getMessage(stream, { last_by_subj: subject })).seq;
    } catch (err) {
      if (/no message found|message not found/i.test(errorMessage(err))) return [];
      throw unavailable(err);
    }
    const out: StoredMessage[] = [];
    let name: string | undefined;
    try {
      const info = await jsm.consumers.add(stream, {
        ack_policy: AckPolicy.None,
        deliver_policy: DeliverPolicy.All,
        filter_subject: subject,
        mem_storage: true,
        inactive_threshold: nanos(INACTIVE_MS),
      });
      name = info.name;
      const consumer = await js.consumers.get(stream, name);
      const batch = await consumer.fetch({ max_messages: this.perSubject + 1, expires: REQUEST_TIMEOUT_MS });
      for await (const m of batch) {
        if (m.seq >= bound) break;
        out.push({ offset: m.seq, data: m.string() });
        // The last one: a message published after it is newer than the read.
        if (m.seq >= last || m.info.pending === 0) break;
      }
    } catch (err) {
      throw unavailable(err);
    } finally {
      if (name !== undefined) void jsm.consumers.delete(stream, name).catch(() => {});
    }
    return out;
  }

  /** The stream's first and last sequence and its epoch now. */
  async streamState(): Promise<{ first: number; last: number; epoch: string }> {
    const conn = this.connection();
    let state;
    try {
      const info = await conn.jsm.streams.info(this.layout.stream);
      state = { first: info.state.first_seq, last: info.state.last_seq, epoch: streamEpoch(this.layout.stream, info.created) };
    } catch (err) {
      if (/stream not found/i.test(errorMessage(err))) this.resync(conn);
      throw unavailable(err);
    }
    if (state.epoch !== this.epoch) {
      this.resync(conn);
      throw new BusUnavailableError('jetstream: the history stream was created again');
    }
    return state;
  }

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    this.setStatus('closed');
    this.first.settled(new BusUnavailableError('jetstream history closed'));
    this.sleeper.wake();
    this.stopConsumer();
    const nc = this.conn?.nc;
    this.conn = undefined;
    if (nc) await nc.close().catch(() => {});
  }
}

function unavailable(err: unknown): BusUnavailableError {
  return err instanceof BusUnavailableError ? err : new BusUnavailableError(`jetstream: ${errorMessage(err)}`, { cause: err });
}

/** The channel store over a {@link JetStreamLog}: offsets are stream sequences. */
export class JetStreamChannelStore implements ChannelStore {
  readonly kind = 'jetstream';

  constructor(
    private readonly log: JetStreamLog,
    private readonly nodeId: string,
  ) {}

  async publish(message: OutgoingMessage): Promise<ChannelPosition> {
    const offset = await this.log.append(channelSubject(this.log.layout, message.channel), message.data, { name: ORIGIN_HEADER, value: this.nodeId });
    return { offset, epoch: this.log.epoch };
  }

  async read(channel: string, options: ReadOptions = {}): Promise<ReadResult> {
    // The fence first: every message of the channel older than it is read below, every newer
    // one reaches the node's consumer after the fence.
    const bound = options.fence ? await this.log.appendControl(options.fence.topic, options.fence.payload) : Infinity;
    const all = await this.log.messagesOf(channelSubject(this.log.layout, channel), bound);
    const stream = await this.log.streamState();
    const lastMessage = all[all.length - 1];
    const offset = lastMessage ? lastMessage.offset : Number.isFinite(bound) ? bound - 1 : stream.last;
    const complete = completeAfter({ first: all[0]?.offset, count: all.length, perSubject: this.log.perSubject, streamFirst: stream.first });
    const epoch = stream.epoch;
    const since = options.since;
    if (since) {
      const covered = since.epoch === epoch && since.offset <= offset && since.offset >= complete;
      return { offset, epoch, messages: covered ? all.filter((m) => m.offset > since.offset) : [], covered, more: false };
    }
    const page = latestPage(all, options);
    // A page that left older messages out vouches only for what it holds.
    const completeAfterPage = page.messages.length === all.length ? complete : (page.messages[0]?.offset ?? offset + 1) - 1;
    return { offset, epoch, ...page, covered: true, completeAfter: Math.min(completeAfterPage, offset) };
  }

  async close(): Promise<void> {}
}
