/**
 * Presence on Kafka, the link to the topic (brokers/kafka/presence.ts has the whole design): the
 * session (brokers/kafka/session.ts), the view it keeps up to date (brokers/kafka/presence-view.ts),
 * and the writes, one produce request in flight. Reading is like the bus adapter's: a consumer
 * group of its own per session, nothing committed, the positions kept here. A session is usable
 * once the view has read up to the end offsets read when it opened.
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Admin } from '@platformatic/kafka';
import { kafkaErrorMessage, loadKafkaClient, type Closable } from './client.js';
import { createTopic, listEnds, openSession, SessionLoop, SharedEnds, SingleFlightProducer, type KafkaRecord, type RecordToProduce, type Session } from './session.js';
import { BusUnavailableError } from '../../errors.js';
import type { SweptPresenceOptions } from '../../stores/store.js';
import { PresenceView, SWEPT_HEADER, type ViewChange } from './presence-view.js';

/** How long a call waits for a session, an answer of the broker, or the view to catch up, before it counts as unavailable. */
export const OP_TIMEOUT_MS = 3000;
/** The created topic's segments roll this often, so that the cleaner can compact all but the newest ten minutes. */
export const SEGMENT_MS = 600_000;

export interface KafkaPresenceOptions extends SweptPresenceOptions {
  /** Bootstrap brokers, `host:port`. */
  readonly brokers: readonly string[];
  /** The presence topic, e.g. `<bus topic>-presence`. */
  readonly topic: string;
}

/** What the rest of the store hears from the link. */
export interface PresenceLinkHooks {
  /** A record changed the view (called after the view applied it). */
  readonly changed: (change: NonNullable<ViewChange>) => void;
  /** A tombstone of `key` was read (before the view applies it). */
  readonly removed: (key: string) => void;
  /** The log is shorter than what this node read (the broker lost it, or the topic was made again): the view starts over. */
  readonly lost: () => void;
  /** A new session's view has caught up: the node can write again. */
  readonly back: () => void;
  /** The session ended. */
  readonly ended: () => void;
}

/** `err` as the BusUnavailableError a presence call rejects with. */
export function unavailable(err: unknown): BusUnavailableError {
  return err instanceof BusUnavailableError ? err : new BusUnavailableError(`kafka presence: ${kafkaErrorMessage(err)}`, { cause: err });
}

/** `promise`, or a BusUnavailableError saying `what` after {@link OP_TIMEOUT_MS}. */
export function within<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new BusUnavailableError(`kafka presence: ${what}`)), OP_TIMEOUT_MS);
  });
  return Promise.race([promise, timeout])
    .catch((err: unknown) => {
      throw unavailable(err);
    })
    .finally(() => clearTimeout(timer));
}

/** The presence topic as this node reads and writes it: the session, the view, and waits on both. */
export class PresenceLink {
  readonly view: PresenceView;
  private readonly keyPrefix: string;
  private readonly id = `fanout-presence-${randomBytes(8).toString('hex')}`;
  private sessions = 0;
  private current: Session | undefined;
  /** Per partition, the offset of the next record to read; undefined until the first session. */
  private positions: Map<number, bigint> | undefined;
  /** The end offsets the current session must read up to before it is used. */
  private target: bigint[] = [];
  /** Local time from which the current session has read the topic up to its end. */
  private since: number | undefined;
  private readonly waiters = new Set<() => void>();
  private warned = false;
  private readonly ends = new SharedEnds();
  private readonly loop = new SessionLoop({
    label: 'kafka presence',
    open: (clients) => this.open(clients),
    live: (session) => this.hold(session),
    failed: (err, during) => this.options.logError(unavailable(err), during === 'open' ? 'presence: Kafka not reachable; retrying' : 'presence: Kafka session ended; reconnecting'),
  });
  private readonly producer = new SingleFlightProducer({
    session: () => this.current,
    unavailable: () => new BusUnavailableError('kafka presence: not connected to Kafka'),
    full: (waiting) => new BusUnavailableError(`kafka presence has ${waiting} records waiting for the broker`),
    failed: unavailable,
  });

  constructor(
    private readonly options: KafkaPresenceOptions,
    private readonly hooks: PresenceLinkHooks,
  ) {
    this.view = new PresenceView(options.node);
    this.keyPrefix = `${options.prefix}\0`;
  }

  /** The open session, if any (usable only once {@link readingSince} is set). */
  get session(): Session | undefined {
    return this.current;
  }

  /** Local time from which the current session has read the topic up to its end; undefined before. */
  get readingSince(): number | undefined {
    return this.since;
  }

  get closing(): boolean {
    return this.loop.closing;
  }

  /** Starts the session loop (again a no-op once it runs or the link closed). */
  start(): void {
    this.loop.start();
  }

  /** Holds a session until it fails. */
  private async hold(session: Session): Promise<{ cause: Error; usable: boolean }> {
    this.current = session;
    this.wake();
    // Back: once the view has caught up (no deadline: the calls' 3 s is for callers who wait, and
    // a long outage can leave more to read). Rejects only when the store closes.
    void this.until(() => this.current !== session || this.since !== undefined, 'closed', Infinity).then(() => {
      if (this.current === session) this.hooks.back();
    }, () => {});
    const cause = await session.ended;
    this.current = undefined;
    this.since = undefined;
    this.hooks.ended();
    this.wake();
    return { cause, usable: true };
  }

  /** A session on the presence topic, read from the kept positions (the whole topic at first), with a consumer group of its own. */
  private async open(clients: Closable[]): Promise<Session> {
    const { brokers, topic } = this.options;
    const session = await openSession(
      {
        label: 'kafka presence',
        brokers,
        topic,
        clientId: this.id,
        groupId: `${this.id}-${++this.sessions}`,
        ensureTopic: (admin) => this.ensureTopic(admin),
        fallbackMode: 'earliest',
        // A call waiting to read up to the log's end: no fetch linger (brokers/kafka/fetch-linger.ts).
        urgent: () => this.waiters.size > 0,
        positions: async (_consumer, _shape, ends) => {
          // The log is shorter than what this node read: the broker lost it (or the topic was made
          // again). Everything is read again, and this node's clients join again.
          if (this.positions && ends.some((end, p) => end < (this.positions!.get(p) ?? 0n))) {
            this.positions = undefined;
            this.view.clear();
            this.hooks.lost();
          }
          const positions = this.positions ?? new Map<number, bigint>();
          ends.forEach((_, p) => {
            if (!positions.has(p)) positions.set(p, 0n);
          });
          return positions;
        },
        started: (positions, ends) => {
          this.positions = positions;
          this.target = [...ends];
        },
        onRecord: (positions, message) => this.read(positions, message),
      },
      clients,
    );
    this.checkCaughtUp();
    return session;
  }

  /** Creates the topic (one partition, compacted) unless it exists; warns once when an existing one is not compacted. */
  private async ensureTopic(admin: Admin): Promise<void> {
    const { topic } = this.options;
    const configs = [
      { name: 'cleanup.policy', value: 'compact' },
      { name: 'segment.ms', value: String(SEGMENT_MS) },
      { name: 'min.cleanable.dirty.ratio', value: '0.1' },
    ];
    if ((await createTopic(admin, topic, { partitions: 1, configs })) || this.warned) return;
    const { ConfigResourceTypes } = await loadKafkaClient();
    const [described] = await admin.describeConfigs({ resources: [{ resourceType: ConfigResourceTypes.TOPIC, resourceName: topic, configurationKeys: ['cleanup.policy'] }] });
    const policy = described?.configs.find((c) => c.name === 'cleanup.policy')?.value ?? '';
    if (!policy.split(',').includes('compact')) {
      this.warned = true;
      this.options.warn(`the Kafka presence topic ${topic} has cleanup.policy=${policy}, not compact: every node reads all of it at start, so it keeps growing; set cleanup.policy=compact on it`);
    }
  }

  /** Applies one record to the view and tells what it changed. */
  private read(positions: Map<number, bigint>, message: KafkaRecord): void {
    if (this.closing || (positions.get(message.partition) ?? 0n) > message.offset) return;
    positions.set(message.partition, message.offset + 1n);
    const raw = message.key?.toString('utf8');
    if (raw?.startsWith(this.keyPrefix)) {
      const key = raw.slice(this.keyPrefix.length);
      const value = message.value ?? null;
      if (value === null) this.hooks.removed(key);
      const change = this.view.apply(key, value, header(message.headers, SWEPT_HEADER), performance.now());
      if (change) this.hooks.changed(change);
    }
    this.checkCaughtUp();
    this.wake();
  }

  private checkCaughtUp(): void {
    if (this.since !== undefined || !this.positions) return;
    if (this.target.every((end, p) => (this.positions!.get(p) ?? 0n) >= end)) this.since = performance.now();
  }

  private wake(): void {
    const waiters = [...this.waiters];
    this.waiters.clear();
    for (const w of waiters) w();
  }

  /** Waits until `ok()` holds, re-checked on every change, for up to {@link OP_TIMEOUT_MS}. */
  private async until(ok: () => boolean, what: string, deadline = performance.now() + OP_TIMEOUT_MS): Promise<void> {
    while (!ok()) {
      if (this.closing) throw new BusUnavailableError('kafka presence store is closed');
      const left = deadline - performance.now();
      if (left <= 0) throw new BusUnavailableError(`kafka presence: ${what}`);
      await new Promise<void>((resolve) => {
        // No deadline: only a change wakes it (a timer past 2^31 ms would fire at once).
        const timer = Number.isFinite(left) ? setTimeout(done, left) : undefined;
        function done(): void {
          clearTimeout(timer);
          resolve();
        }
        this.waiters.add(done);
        this.current?.hurry();
      });
    }
  }

  /** A session whose view has read the topic up to where it was when the session opened. */
  async whenReady(deadline?: number): Promise<Session> {
    this.start();
    await this.until(() => this.current !== undefined && this.since !== undefined, 'not connected to Kafka', deadline);
    return this.current!;
  }

  /**
   * Waits until the view has read what the topic held when called (its end offsets asked of the
   * broker now: one request in flight, calls that come meanwhile share the next one).
   */
  async caughtUp(deadline: number): Promise<void> {
    const session = await this.whenReady(deadline);
    const ends = await this.ends.latest(() => within(listEnds(session.consumer, this.options.topic), 'the broker did not say the end of the presence topic'));
    await this.until(() => this.current === session && ends.every((end, p) => (this.positions?.get(p) ?? 0n) >= end), 'the presence view did not catch up in time', deadline);
  }

  /** Produces the records, in order, one request in flight; resolves once the broker has them all. */
  produce(records: RecordToProduce[]): Promise<void> {
    return within(this.producer.send(records).then(() => {}), 'the broker did not take the write in time');
  }

  /** A record of `key` (under --bus-prefix): `value` as JSON, null for a tombstone; `sweptBy` names the node that swept it. */
  record(key: string, value: unknown, sweptBy?: string): RecordToProduce {
    return {
      topic: this.options.topic,
      partition: 0,
      key: Buffer.from(this.keyPrefix + key, 'utf8'),
      value: value === null ? (null as unknown as Buffer) : Buffer.from(JSON.stringify(value), 'utf8'),
      ...(sweptBy !== undefined ? { headers: new Map([[Buffer.from(SWEPT_HEADER), Buffer.from(sweptBy, 'utf8')]]) } : {}),
    };
  }

  /** The view key of a record made by {@link record}. */
  keyOf(record: RecordToProduce): string {
    return record.key!.toString('utf8').slice(this.keyPrefix.length);
  }

  /** Closes: waits end, queued records are refused, the session and an open under way close. */
  async close(): Promise<void> {
    this.loop.stop();
    this.wake();
    const session = this.current;
    this.current = undefined;
    this.producer.rejectAll(new BusUnavailableError('kafka presence store is closed'));
    await this.loop.closed(session);
  }
}

function header(headers: Map<Buffer, Buffer> | undefined, name: string): string | undefined {
  for (const [k, v] of headers ?? []) if (k.toString('utf8') === name) return v.toString('utf8');
  return undefined;
}
