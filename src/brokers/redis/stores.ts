/**
 * History and presence in Redis.
 *
 * History: per channel a hash `P:ch:{C}:meta` (epoch, offset) and a stream `P:ch:{C}:log` whose
 * entry ids are `<offset>-0`. One Lua script does HINCRBY (the offset) + XADD (MAXLEN ~
 * --history-size) + EXPIRE (--history-ttl) + PUBLISH, so offsets, history and the order in which
 * every node receives messages agree: Redis runs scripts one at a time, and every node (the
 * publisher's included) takes channel messages from the one pub/sub stream. The script builds
 * the payload from the head the store passes (envelope header + frame up to the offset, built by
 * protocol/message-frame.ts `channelPayloadHead`). `{C}` is a hash tag, so a channel's keys share a cluster slot.
 *
 * Ingest marks (OutgoingMessage.once, Kafka ingest): a hash `P:ch:{C}:once` (source → last
 * position published), read and moved by the same publish script, so a record handed over again
 * is refused atomically with the publish it would have been.
 *
 * Idempotency keys (OutgoingMessage.idempotency): a string `P:ch:{C}:idem:<key>` holding the
 * first publish's `<offset> <epoch>`, set by the publish script with EX the key's window and read
 * by it before anything else, so a repeat writes nothing. Apart from the history keys: it holds
 * with --history-size 0 and outlives the channel's history for its whole window.
 *
 * Epoch: a random id in the meta hash, created with the hash and replaced (offsets restart at 1)
 * when the hash is gone or the stream vanished under it (flushed, evicted, expired).
 *
 * Presence: a hash per channel `P:presence:{C}` (client → {"node","user"}), a sorted set
 * `P:presence:nodes` (node → last heartbeat, Redis time) and per node a set of the channels it
 * has entries in. Every node heartbeats each --presence-ttl/3 seconds; the heartbeat script also
 * sweeps nodes silent for --presence-ttl, removing their entries and returning them so the node
 * that swept publishes their `leave` events (exactly one node does, the script being atomic).
 *
 * Occupancy (--webhook): per channel a hash `P:wh:occ:{C}` (node → its live subscribers) and a
 * hash `P:wh:users:{C}` (user → {"node":connections,…}), and per node a set `P:wh:node:<node>` of
 * the channels it has counts in. A node writes its own absolute counts with one script that
 * reports whether the write crossed 0↔1 cluster-wide (the hash, or the user's field, appearing or
 * going); the heartbeat's sweep removes a dead node's counts in the same atomic step as its
 * presence and reports the crossings that caused. So each crossing is seen by exactly one node.
 */
import { TIMINGS } from '../../config/defaults.js';
import { BusUnavailableError } from '../../errors.js';
import { channelPayloadHead } from '../../protocol/message-frame.js';
import { newEpoch } from '../../stores/epoch.js';
import { PresenceWrites } from '../../stores/presence-writes.js';
import { entryFrom, storedFields } from '../../stores/presence-entry.js';
import type { ScriptRedis } from './scripts.js';
import {
  type ChannelStore,
  type DepartedHandler,
  type OccupancyChange,
  type OccupancyEvent,
  type OccupancyStore,
  type OutgoingMessage,
  type PresenceEntry,
  type PresenceStore,
  type PublishResult,
  type ReadOptions,
  type ReadResult,
  type StoredMessage,
} from '../../stores/store.js';

/** The connection the stores take (the scripts are in redis-scripts.ts). */
export { withScripts } from './scripts.js';

/**
 * Seconds a channel's {@link OutgoingMessage.once} marks outlive its last such publish (at least
 * --history-ttl): a log can hand a message over again long after the channel's history expired
 * (a node down for hours before it commits), and the mark must still be there to refuse it.
 */
const ONCE_MARKS_TTL_S = 7 * 24 * 3600;

/**
 * Seconds the epoch of a channel that holds no message lives with --history-ttl 0 (with a ttl,
 * the ttl): created by a subscription joining an empty channel, it must not stay for good, or
 * subscribing to ever new names would fill Redis. A subscriber that waits longer for the first
 * message sees it in a new epoch (the SDK's `unrecovered`, with nothing to reload).
 */
export const EMPTY_EPOCH_TTL_S = 300;

/**
 * A failed Redis call as the channel layer sees it. The text reaches clients (`unavailable`
 * answers), so it never carries Redis's own error text (a script's internals, a key name): only
 * whether Redis could not be reached or refused the command; the error itself stays in `cause`.
 */
function unavailable(err: unknown): BusUnavailableError {
  if (err instanceof BusUnavailableError) return err;
  const refused = err instanceof Error && err.name === 'ReplyError';
  return new BusUnavailableError(refused ? 'the redis store refused the request' : 'the redis store is not reachable', { cause: err });
}

/** How long a publish waits for the first connection. */
const FIRST_CONNECT_WAIT_MS = 3000;

export interface RedisStoreOptions {
  readonly prefix: string;
  readonly historySize: number;
  readonly historyTtl: number;
  /** A channel's own ttl in seconds (its namespace's `history-ttl`), when channels differ; else `historyTtl` for all. */
  readonly historyTtlOf?: (channel: string) => number;
}

export class RedisChannelStore implements ChannelStore {
  readonly kind = 'redis';

  /** The connection was ready once: not ready now means it dropped. */
  private wasReady = false;

  constructor(private readonly redis: ScriptRedis, private readonly options: RedisStoreOptions) {
    if (redis.status === 'ready') this.wasReady = true;
    else redis.once('ready', () => (this.wasReady = true));
  }

  private keys(channel: string): [string, string] {
    const base = `${this.options.prefix}:ch:{${channel}}`;
    return [`${base}:meta`, `${base}:log`];
  }

  async publish(message: OutgoingMessage): Promise<PublishResult> {
    await this.ready();
    const { historySize } = this.options;
    const historyTtl = this.ttlOf(message.channel);
    const once = message.once;
    let result: [number, string, number];
    try {
      result = await this.redis.fanoutPublish(
        ...this.keys(message.channel),
        `${this.options.prefix}:ch:{${message.channel}}:once`,
        `${this.options.prefix}:ch:{${message.channel}}:idem:${message.idempotency?.key ?? ''}`,
        newEpoch(),
        Math.ceil(historyTtl),
        historySize,
        message.topic,
        channelPayloadHead(message.channel, message.origin),
        message.data,
        once?.source ?? '',
        once?.position ?? 0,
        historyTtl > 0 ? Math.max(Math.ceil(historyTtl), ONCE_MARKS_TTL_S) : 0,
        EMPTY_EPOCH_TTL_S,
        message.idempotency?.window ?? 0,
      );
    } catch (err) {
      throw unavailable(err);
    }
    const [offset, epoch, duplicate] = result;
    return duplicate === 1 ? { offset, epoch, duplicate: true } : { offset, epoch };
  }

  /**
   * A publish is sent only on a ready connection, never queued: a queued command that timed out
   * is still sent once Redis is back, and a publish answered `unavailable` must not be stored
   * later (the client would retry it). While the first connection is being made it waits for it
   * (a little); after a drop it fails at once. Reads may wait in the queue: a late read is harmless.
   */
  private async ready(): Promise<void> {
    const { redis } = this;
    if (redis.status === 'ready') return;
    if (this.wasReady || redis.status === 'end') throw unavailable(new Error(`redis is ${redis.status}`));
    let timer: NodeJS.Timeout | undefined;
    let onReady: (() => void) | undefined;
    try {
      await new Promise<void>((resolve, reject) => {
        onReady = resolve;
        redis.once('ready', onReady);
        timer = setTimeout(() => reject(unavailable(new Error(`redis is ${redis.status}`))), FIRST_CONNECT_WAIT_MS);
      });
    } finally {
      clearTimeout(timer);
      if (onReady) redis.off('ready', onReady);
    }
  }

  /** The channel's ttl: its namespace's, else --history-ttl (the scripts EXPIRE its keys with it). */
  private ttlOf(channel: string): number {
    return this.options.historyTtlOf?.(channel) ?? this.options.historyTtl;
  }

  async read(channel: string, options: ReadOptions = {}): Promise<ReadResult> {
    const { historySize } = this.options;
    const historyTtl = this.ttlOf(channel);
    const since = options.since;
    // Offsets start at 1: nothing is older than 1 (and the script's range needs an id above 0-0).
    const noneOlder = options.before !== undefined && options.before <= 1;
    let reply: Array<number | string>;
    try {
      reply = await this.redis.fanoutRead(
        ...this.keys(channel),
        newEpoch(),
        Math.ceil(historyTtl),
        historySize,
        since ? 'since' : 'limit',
        since ? since.offset : noneOlder ? 0 : Math.min(options.limit ?? historySize, historySize),
        since ? since.epoch : '',
        options.fence ? options.fence.topic : '',
        options.fence?.payload ?? '',
        options.before === undefined || noneOlder ? '' : options.before,
        options.maxBytes ?? 0,
        EMPTY_EPOCH_TTL_S,
      );
    } catch (err) {
      throw unavailable(err);
    }
    const messages: StoredMessage[] = [];
    for (let i = 4; i + 1 < reply.length; i += 2) {
      messages.push({ offset: parseInt(String(reply[i]), 10), data: String(reply[i + 1]) });
    }
    return { offset: Number(reply[0]), epoch: String(reply[1]), covered: reply[2] === 1, more: reply[3] === 1, messages };
  }

  async close(): Promise<void> {}
}

export interface RedisPresenceOptions {
  readonly prefix: string;
  readonly node: string;
  /** Seconds without a heartbeat after which a node's clients leave. */
  readonly ttl: number;
  readonly logError: (err: Error, what: string) => void;
  /** Called when this node was swept as dead (e.g. Redis was away) and must register its clients again. */
  readonly rejoin: () => void;
}

export class RedisPresenceStore implements PresenceStore {
  readonly kind = 'redis';
  private timer: NodeJS.Timeout | undefined;
  private onDeparted: DepartedHandler = () => {};
  private beats = 0;
  private readonly nodesKey: string;

  constructor(private readonly redis: ScriptRedis, private readonly options: RedisPresenceOptions) {
    this.nodesKey = `${options.prefix}:presence:nodes`;
  }

  private hash(channel: string): string {
    return `${this.options.prefix}:presence:{${channel}}`;
  }

  join(channel: string, entry: PresenceEntry): Promise<void> {
    return this.writes.join(channel, entry);
  }

  leave(channel: string, client: string): Promise<void> {
    return this.writes.leave(channel, client);
  }

  /** Joins and leaves that could not be written (Redis away), replayed when it is back. */
  private readonly writes = new PresenceWrites((channel, client, entry) => this.write(channel, client, entry), unavailable);

  private async write(channel: string, client: string, entry: PresenceEntry | undefined): Promise<void> {
    // The first heartbeat removes every entry an earlier process of this node id left: a write
    // sent before it would be removed with them, so writes wait for it (as long as a first
    // connection may take; past that they are refused and kept for the replay).
    if (this.leftoversSwept) await bounded(this.leftoversSwept, FIRST_CONNECT_WAIT_MS, () => unavailable(new Error(`redis is ${this.redis.status}`)));
    if (!entry) {
      await this.redis.hdel(this.hash(channel), client);
      return;
    }
    const value = JSON.stringify({ node: this.options.node, ...storedFields(entry) });
    await this.redis
      .multi()
      .hset(this.hash(channel), client, value)
      .sadd(`${this.options.prefix}:presence:node:${this.options.node}`, channel)
      .exec();
  }

  async list(channel: string): Promise<PresenceEntry[]> {
    let reply: string[];
    try {
      reply = await this.redis.fanoutPresence(this.hash(channel), this.nodesKey, this.options.ttl * 1000);
    } catch (err) {
      throw unavailable(err);
    }
    const out: PresenceEntry[] = [];
    for (let i = 0; i + 1 < reply.length; i += 2) out.push(entryFrom(reply[i]!, parsed(reply[i + 1]!)));
    return out;
  }

  start(onDeparted: DepartedHandler): void {
    this.onDeparted = onDeparted;
    this.run();
  }

  /** --webhook: the sweeps' occupancy crossings go to `onSwept` (heartbeats start if presence did not start them). */
  watchOccupancy(onSwept: (events: readonly OccupancyEvent[]) => void): void {
    this.onSwept = onSwept;
    this.run();
  }

  private onSwept: (events: readonly OccupancyEvent[]) => void = () => {};
  private running = false;
  /** Settles once the first heartbeat removed an earlier process's leftovers (see {@link write}). */
  private leftoversSwept: Promise<void> | undefined;

  private run(): void {
    if (this.running) return;
    this.running = true;
    // Leftovers of an earlier process with this node id go first, then the node registers; again
    // at once after every reconnect, so a node is listed as soon as it can be reached.
    let first = true;
    let swept!: () => void;
    this.leftoversSwept = new Promise<void>((resolve) => (swept = resolve));
    const onReady = (): void => {
      const begin = first ? this.beat('leave').finally(swept) : Promise.resolve();
      first = false;
      this.writes.replay();
      void begin.then(() => this.beat('beat'));
    };
    this.redis.on('ready', onReady);
    if (this.redis.status === 'ready') onReady();
    this.timer = setInterval(() => void this.beat('beat'), Math.max(TIMINGS.presenceHeartbeatMinMs, this.options.ttl * 1000 * TIMINGS.presenceHeartbeatFraction));
    this.timer.unref();
  }

  private async beat(mode: 'beat' | 'leave'): Promise<void> {
    let reply: [number, string[], string[]];
    try {
      reply = await this.redis.fanoutHeartbeat(this.nodesKey, this.options.prefix, this.options.node, this.options.ttl * 1000, mode);
    } catch (err) {
      this.options.logError(err as Error, 'presence heartbeat failed');
      return;
    }
    const [added, departed, crossings] = reply;
    if (mode === 'beat' && added === 1 && this.beats++ > 0) this.options.rejoin();
    // Redis answers again: joins and leaves whose replay after the reconnect failed too go now.
    if (this.writes.pending > 0) this.writes.replay();
    for (let i = 0; i + 2 < departed.length; i += 3) {
      const channel = String(departed[i]);
      this.onDeparted(channel, entryFrom(String(departed[i + 1]), parsed(String(departed[i + 2]))));
    }
    const events: OccupancyEvent[] = [];
    for (let i = 0; i + 2 < crossings.length; i += 3) events.push(occupancyEvent(crossings[i]!, crossings[i + 1]!, crossings[i + 2]!));
    if (events.length > 0) this.onSwept(events);
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    if (this.redis.status === 'ready') await this.beat('leave');
  }
}

/** A presence hash value's JSON, or undefined when it is not JSON. */
function parsed(value: string): unknown {
  try {
    return JSON.parse(value);
  } catch {
    return undefined;
  }
}

function occupancyEvent(name: string, channel: string, user: string): OccupancyEvent {
  return { name: name as OccupancyEvent['name'], channel, ...(user !== '' ? { user } : {}) };
}

/** Occupancy in Redis (see the top of this file); liveness and the sweep come with the presence heartbeats. */
export class RedisOccupancyStore implements OccupancyStore {
  readonly kind = 'redis';

  constructor(
    private readonly redis: ScriptRedis,
    private readonly presence: RedisPresenceStore,
    private readonly options: { readonly prefix: string; readonly node: string },
  ) {}

  async update(change: OccupancyChange): Promise<OccupancyEvent[]> {
    const { prefix, node } = this.options;
    const { channel } = change;
    const args: Array<string | number> = [node, channel, change.subscribers];
    for (const [user, count] of change.users) args.push(user, count);
    let reply: string[];
    try {
      reply = await this.redis.fanoutOccupancy(`${prefix}:wh:occ:{${channel}}`, `${prefix}:wh:users:{${channel}}`, `${prefix}:wh:node:${node}`, ...args);
    } catch (err) {
      throw unavailable(err);
    }
    const events: OccupancyEvent[] = [];
    for (let i = 0; i + 1 < reply.length; i += 2) events.push(occupancyEvent(reply[i]!, channel, reply[i + 1]!));
    return events;
  }

  start(onSwept: (events: readonly OccupancyEvent[]) => void): void {
    this.presence.watchOccupancy(onSwept);
  }
}

/** `promise`, or a rejection with `refusal()` after `ms`. */
function bounded(promise: Promise<void>, ms: number, refusal: () => Error): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([promise, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(refusal()), ms)))]).finally(() => clearTimeout(timer));
}
