/**
 * Channel history on NATS JetStream (`--history nats://…`). Layout and the recovery rule are in
 * jetstream-layout.ts; docs/brokers.md explains sizing.
 *
 * Offsets are the stream's sequence numbers, so offsets, history and order come from JetStream
 * itself: a publish is a JetStream publish on the channel's subject and the ack's sequence is the
 * offset. Nodes never publish a finished frame on core NATS (the frame needs that offset, known
 * only after the ack, and two nodes publishing on one channel would interleave out of order).
 * Instead the stream **republishes** every message it stored (JetStream's `republish`, done by
 * the server in stream order, with the sequence in a header) to a core subject per channel; a
 * node subscribes to the channels it has subscribers for and turns each republished message into
 * the channel's bus payload (sequence and the stream's epoch spliced in), handed to the node's
 * topic router as if a bus had brought it. Every node therefore sees a channel in stream order,
 * its own messages included, which is the store's guarantee (stores/store.ts). Delivery does not
 * depend on retention: a burst larger than --history-size still reaches every node.
 *
 * Fences and presence events are stored too, on the channel's control subject, so they are
 * republished in the same order: a read with a fence stores the fence, then reads the channel's
 * messages, and returns once the node has handed on the stream up to the newest (handed-on.ts).
 *
 * Outage: as with the NATS bus, delivery is at most once while connected. While the connection
 * is down, publishes and reads reject with BusUnavailableError and the link reports
 * `disconnected` (readiness follows); after the reconnect the stream is ensured again, the link
 * reports `connected`, and the channel layer catches up from history (channels/catch-up.ts).
 */
import { performance } from 'node:perf_hooks';
import type { JetStreamClient, JetStreamManager, Msg, NatsConnection, StreamConfig, Subscription } from 'nats';
import { BaseBus } from '../../stores/bus.js';
import { connectNats, natsCredentialsRefused } from './bus.js';
import { nats } from './client.js';
import { busRetryDelay, FirstAttempt, Sleeper } from '../../stores/retry.js';
import type { NatsAddress } from '../../config/bus-address.js';
import { BusUnavailableError, errorMessage } from '../../errors.js';
import type { Logger } from '../../logger.js';
import { buildMessagePayload, channelPayloadHead } from '../../protocol/message-frame.js';
import { controlSubject, duplicateWindowMs, liveSubjects, ORIGIN_HEADER, SEQUENCE_HEADER, TIME_HEADER, streamEpoch, streamLayout, type StreamLayout } from './jetstream-layout.js';
import type { StoredMessage } from '../../stores/store.js';
import { HandedOn } from './handed-on.js';

/** How long a request to JetStream (publish, read) may take before it counts as unavailable. */
const REQUEST_TIMEOUT_MS = 3000;
/** A read's consumer that was not deleted (the node died mid-read) is removed by the server after this long. */
const INACTIVE_MS = 30_000;

/** The stream's max_bytes when no --history-max-bytes is given (its default). */
export const DEFAULT_STREAM_MAX_BYTES = 256 * 1024 * 1024;

export interface JetStreamLogOptions {
  readonly address: NatsAddress;
  /** The flag refused credentials are blamed on: --bus when the history is the bus's own NATS (default --history). */
  readonly flag?: '--bus' | '--history';
  /** --bus-prefix: names the stream and its subjects. */
  readonly prefix: string;
  readonly nodeId: string;
  /** --history-size: the stream's max_msgs_per_subject (at least 1: a message must be stored to be delivered). */
  readonly historySize: number;
  /** --history-ttl in seconds: the stream's max_age (0: no age limit). */
  readonly historyTtl: number;
  /**
   * --history-max-bytes: the stream's max_bytes (0: none), so that with --history-ttl 0 the names
   * clients use cannot grow it without end; the stream drops its oldest messages past it, and
   * recovery across them says `recovered:false` (jetstream-layout.ts `completeAfter`). Default 256 MiB.
   */
  readonly historyMaxBytes?: number;
  /** The longest idempotency window in seconds: the stream's duplicate window (jetstream-layout.ts `duplicateWindowMs`). */
  readonly idempotencyWindow?: number;
  /** The channel of a bus topic (the channel layer's naming); undefined for a topic that is none. */
  readonly channelOf: (topic: string) => string | undefined;
  /** A stored message whose bus payload could not be built (`channelPayloadHead` threw): it is in history but not delivered live; counted and logged by the caller. */
  readonly undelivered?: (err: unknown, channel: string) => void;
  readonly logger: Logger;
}

interface Connected {
  readonly nc: NatsConnection;
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
}

/**
 * The JetStream side of a node: one connection, the stream, and the subscriptions to the
 * republished subjects of the channels it has subscribers for, seen by the node as a {@link Bus}
 * (the route channel topics take). `publish` stores a control message of the topic's channel.
 */
export class JetStreamLog extends BaseBus {
  readonly kind = 'jetstream';
  readonly layout: StreamLayout;
  /** The stream's epoch, known once connected. */
  epoch = '';
  private conn: Connected | undefined;
  private readonly subs = new Map<string, Subscription[]>();
  private readonly sleeper = new Sleeper();
  private readonly first = new FirstAttempt();
  private closing = false;
  private warnedDisabled = false;
  private resuming: Promise<void> | undefined;
  /** The highest sequence of a republished channel message this node received; reads wait on it (`reached`). */
  readonly handed = new HandedOn(REQUEST_TIMEOUT_MS);

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

  /** Connects, then ensures the stream after every reconnect, until {@link close}. */
  private async run(): Promise<void> {
    while (!this.closing) {
      const nc = await connectNats(this.options.address, 'fanout-history', {
        sleeper: this.sleeper,
        closing: () => this.closing,
        failed: (err) => {
          const refused = natsCredentialsRefused(err, this.options.flag ?? '--history');
          const error = refused ?? new BusUnavailableError(`jetstream: ${errorMessage(err)}`, { cause: err });
          this.setStatus('disconnected', error);
          this.first.settled(error);
          return refused !== undefined;
        },
      });
      if (!nc) return;
      void this.watch(nc);
      await this.resume(nc);
      const err = await nc.closed();
      // Only a closed connection lands here (not a reconnect): its subscriptions are gone.
      this.conn = undefined;
      this.subs.clear();
      if (!this.closing) this.setStatus('disconnected', err ?? new Error('nats connection closed'));
    }
  }

  private async watch(nc: NatsConnection): Promise<void> {
    for await (const s of nc.status()) {
      if (this.closing) return;
      if (s.type === nats().Events.Disconnect) {
        this.conn = undefined;
        this.setStatus('disconnected', new Error(`nats disconnected from ${String(s.data)}`));
      } else if (s.type === nats().Events.Reconnect) {
        void this.resume(nc);
      }
    }
  }

  /** Ensures the stream on `nc` (one attempt at a time), retrying while JetStream is not ready; then `connected`. */
  private resume(nc: NatsConnection): Promise<void> {
    this.resuming ??= this.resumeNow(nc).finally(() => (this.resuming = undefined));
    return this.resuming;
  }

  private async resumeNow(nc: NatsConnection): Promise<void> {
    for (let attempt = 0; !this.closing && !nc.isClosed(); attempt++) {
      try {
        const js = nc.jetstream({ timeout: REQUEST_TIMEOUT_MS });
        const jsm = await nc.jetstreamManager({ timeout: REQUEST_TIMEOUT_MS });
        await this.ensureStream(jsm);
        this.conn = { nc, js, jsm };
        this.setStatus('connected');
        this.first.settled();
        return;
      } catch (err) {
        const message = errorMessage(err);
        this.first.settled(new BusUnavailableError(`jetstream: ${message}`, { cause: err }));
        if (/jetstream not enabled|\b503\b/i.test(message) && !this.warnedDisabled) {
          this.warnedDisabled = true;
          this.options.logger.warn({ servers: this.options.address.describe }, '--history nats://: JetStream is not enabled on the NATS server (start it with -js); retrying, /readyz says 503 until then');
        }
        this.options.logger.debug({ err: message }, 'jetstream not ready; retrying');
        await this.sleeper.sleep(busRetryDelay(attempt));
      }
    }
  }

  /** Creates the stream, or updates its limits to this node's flags when they differ. */
  private async ensureStream(jsm: JetStreamManager): Promise<void> {
    const { stream, subjects } = this.layout;
    const maxBytes = this.options.historyMaxBytes ?? DEFAULT_STREAM_MAX_BYTES;
    const limits: Partial<StreamConfig> = {
      subjects: [subjects],
      max_msgs_per_subject: this.perSubject,
      max_age: nats().nanos(this.options.historyTtl * 1000),
      max_bytes: maxBytes > 0 ? maxBytes : -1,
      duplicate_window: nats().nanos(duplicateWindowMs(this.options.idempotencyWindow, this.options.historyTtl)),
      discard: nats().DiscardPolicy.Old,
      republish: this.layout.republish,
    };
    let info;
    try {
      info = await jsm.streams.info(stream);
      const c = info.config;
      if (c.max_msgs_per_subject !== limits.max_msgs_per_subject || c.max_age !== limits.max_age || c.max_bytes !== limits.max_bytes || c.duplicate_window !== limits.duplicate_window || c.subjects?.[0] !== subjects || c.republish?.dest !== limits.republish?.dest) {
        info = await jsm.streams.update(stream, limits);
      }
    } catch (err) {
      if (!/stream not found/i.test(errorMessage(err))) throw err;
      info = await jsm.streams.add({ name: stream, retention: nats().RetentionPolicy.Limits, storage: nats().StorageType.File, num_replicas: 1, ...limits });
    }
    const epoch = streamEpoch(stream, info.created);
    if (this.epoch !== '' && epoch !== this.epoch) {
      this.options.logger.warn({ stream }, 'the JetStream history stream was created again; offsets start over in a new epoch');
      this.handed.reset();
    }
    this.epoch = epoch;
  }

  /**
   * The stream is gone or is another one (deleted, created again) while connected: report
   * `disconnected`, then ensure it and go on as after a reconnect (a new epoch if it is new,
   * which the channel layer's catch-up turns into `recovered:false` for the subscribers).
   */
  private resync(conn: Connected): void {
    if (this.conn !== conn) return;
    this.conn = undefined;
    this.setStatus('disconnected', new Error('the JetStream history stream changed'));
    void this.resume(conn.nc);
  }

  /** One republished message (a channel message or a control message), in stream order. */
  private fromStream(topic: string, channel: string, m: Msg): void {
    const data = Buffer.from(m.data.buffer, m.data.byteOffset, m.data.byteLength);
    if (m.subject.startsWith(this.layout.liveControlPrefix)) return this.handler(topic, data);
    const seq = Number(m.headers?.get(SEQUENCE_HEADER));
    if (!(seq > 0)) return;
    if (seq <= this.handed.last) {
      // Sequences only grow in one stream: this is a new one (deleted and created again).
      if (this.conn) this.resync(this.conn);
      return;
    }
    this.handed.passed(seq);
    let head: Buffer;
    try {
      head = channelPayloadHead(channel, m.headers?.get(ORIGIN_HEADER) ?? '', Number(m.headers?.get(TIME_HEADER)) || Date.now());
    } catch (err) {
      this.options.undelivered?.(err, channel);
      return;
    }
    this.handler(topic, buildMessagePayload(head, seq, this.epoch, data.toString('utf8')));
  }

  /** The connection, or BusUnavailableError while there is none. */
  connection(): Connected {
    const conn = this.conn;
    if (!conn || !this.connected) throw new BusUnavailableError(`jetstream is ${this.status}`);
    return conn;
  }

  /** Stores `data` on `subject`; resolves with its sequence. */
  async append(subject: string, data: Buffer | string, origin: string): Promise<number> {
    return (await this.store(subject, data, origin)).seq;
  }

  /** {@link append}; with `msgID`, stored once per id within the stream's duplicate window (`duplicateWindowMs`), a repeat answered with the first one's sequence. */
  async store(subject: string, data: Buffer | string, origin: string, msgID?: string): Promise<{ seq: number; duplicate: boolean }> {
    const conn = this.connection();
    const h = nats().headers();
    h.set(ORIGIN_HEADER, origin);
    h.set(TIME_HEADER, String(performance.timeOrigin + performance.now()));
    try {
      const ack = await conn.js.publish(subject, typeof data === 'string' ? Buffer.from(data) : data, { headers: h, ...(msgID ? { msgID } : {}) });
      return { seq: ack.seq, duplicate: ack.duplicate };
    } catch (err) {
      // Nobody stores the subject: the stream is gone.
      if (/no responders|503/i.test(errorMessage(err))) this.resync(conn);
      throw unavailable(err);
    }
  }

  /** A control message (fence, presence event) of `topic`'s channel, in stream order. */
  async publish(topic: string, payload: Buffer): Promise<void> {
    await this.appendControl(topic, payload);
  }

  appendControl(topic: string, payload: Buffer): Promise<number> {
    const channel = this.options.channelOf(topic);
    if (channel === undefined) return Promise.reject(new BusUnavailableError(`jetstream carries channel topics only, not ${topic}`));
    return this.append(controlSubject(this.layout, channel), payload, this.options.nodeId);
  }

  /** Subscribes to the republished subjects of `topic`'s channel (idempotent); resolves once the server has the subscriptions. */
  async subscribe(topic: string): Promise<void> {
    const { nc } = this.connection();
    const channel = this.options.channelOf(topic);
    if (channel === undefined || this.subs.has(topic)) return;
    try {
      const callback = (err: Error | null, m: Msg): void => {
        if (!err) this.fromStream(topic, channel, m);
      };
      this.subs.set(topic, liveSubjects(this.layout, channel).map((subject) => nc.subscribe(subject, { callback })));
      await nc.flush();
    } catch (err) {
      throw unavailable(err);
    }
  }

  async unsubscribe(topic: string): Promise<void> {
    const subs = this.subs.get(topic);
    if (!subs) return;
    this.subs.delete(topic);
    try {
      for (const sub of subs) sub.unsubscribe();
      await this.conn?.nc.flush();
    } catch {
      /* the connection is closed or reconnecting: the subscriptions are gone from the client */
    }
  }

  /** Every retained message of `subject`, oldest first (at most max_msgs_per_subject); when the newest was stored (ms, the server's clock); `count`, how many the stream held as the read began (a flood may push some out before they are read). */
  async messagesOf(subject: string): Promise<{ messages: StoredMessage[]; lastAt: number; count: number }> {
    const { js, jsm } = this.connection();
    const { stream } = this.layout;
    let last: number, lastAt: number;
    let count = 0;
    try {
      const newest = await jsm.streams.getMessage(stream, { last_by_subj: subject });
      [last, lastAt] = [newest.seq, newest.time.getTime()];
    } catch (err) {
      if (/no message found|message not found/i.test(errorMessage(err))) return { messages: [], lastAt: 0, count };
      throw unavailable(err);
    }
    const out: StoredMessage[] = [];
    let name: string | undefined;
    try {
      const info = await jsm.consumers.add(stream, {
        ack_policy: nats().AckPolicy.None,
        deliver_policy: nats().DeliverPolicy.All,
        filter_subject: subject,
        mem_storage: true,
        inactive_threshold: nats().nanos(INACTIVE_MS),
      });
      [name, count] = [info.name, info.num_pending];
      const consumer = await js.consumers.get(stream, name);
      const batch = await consumer.fetch({ max_messages: this.perSubject + 1, expires: REQUEST_TIMEOUT_MS });
      for await (const m of batch) {
        out.push({ offset: m.seq, data: m.string() });
        // The last one: a message published after it is newer than the read.
        if (m.seq >= last || m.info.pending === 0) break;
      }
    } catch (err) {
      throw unavailable(err);
    } finally {
      if (name !== undefined) void jsm.consumers.delete(stream, name).catch(() => {});
    }
    return { messages: out, lastAt, count: Math.max(count, out.length) };
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
    const nc = this.conn?.nc;
    this.conn = undefined;
    this.subs.clear();
    if (nc) await nc.close().catch(() => {});
  }
}

/** A failed JetStream call; the text reaches clients (`unavailable`), so the server's own error stays in `cause`. */
function unavailable(err: unknown): BusUnavailableError {
  return err instanceof BusUnavailableError ? err : new BusUnavailableError('the jetstream store did not answer', { cause: err });
}
