/**
 * In-process history and presence: the stores of the memory bus. Their state is shared by every
 * node on one {@link MemoryBroker}, so a cluster of in-process nodes behaves like one on Redis.
 * Publishing is synchronous up to the bus hand-off, which keeps offsets and delivery in step.
 *
 * Bounds (docs/security.md, "What one connection can make a node do"):
 * - Only a publish creates a channel's log. A read of a channel that holds nothing (history, a
 *   subscribe with or without `since`) answers offset 0 and the channel's empty epoch
 *   ({@link emptyEpochOf}) and keeps nothing, whatever the channel's name.
 * - The logs are kept least recently written first, so the expired ones (--history-ttl) and
 *   those past --history-max-bytes leave from the front, a bounded step at a time, on every
 *   publish and read: nothing is scanned whole.
 * - Past --history-max-bytes the least recently written channels are evicted whole; their next
 *   message starts a new epoch, so a recovery across an eviction answers `recovered:false`.
 *   What counts: each message's data in UTF-8 (never less than V8 keeps for it) plus
 *   {@link MESSAGE_OVERHEAD_BYTES}, and {@link CHANNEL_OVERHEAD_BYTES} plus the name per channel.
 *
 * Contract note for store.ts (the empty epoch): a channel with no log answers offset 0 and an
 * epoch that is the same on every read until some log that shared its slot is dropped. A
 * subscriber at (0, that epoch) recovers every message of the log that a first publish creates
 * (the log takes that epoch), and gets `recovered:false` once a log might have come and gone
 * unseen, never a silently short recovery. Once-marks ({@link OutgoingMessage.once}) live with
 * their log: a channel that expired or was evicted forgets them, as it forgets its offsets.
 */
import type { MemoryBroker } from './bus.js';
import { BusUnavailableError } from '../../errors.js';
import { newEpoch } from '../../stores/epoch.js';
import { buildMessagePayload, channelPayloadHead } from '../../protocol/message-frame.js';
import { latestPage } from '../../stores/page.js';
import { IdempotencyKeys } from '../../stores/idempotency.js';
import {
  type ChannelStore,
  type OccupancyChange,
  type OccupancyEvent,
  type OccupancyStore,
  type OutgoingMessage,
  type PresenceEntry,
  type PublishResult,
  type PresenceStore,
  type ReadOptions,
  type ReadResult,
  type StoredMessage,
} from '../../stores/store.js';

/**
 * What one retained message costs besides its data, counted against --history-max-bytes: the
 * {offset, data} object, the string's header and the array slot, rounded up (V8, 64-bit).
 */
export const MESSAGE_OVERHEAD_BYTES = 96;
/**
 * What one channel's log costs besides its messages and its name: the map entry, the log object,
 * its epoch string and its messages array, rounded up (V8, 64-bit).
 */
export const CHANNEL_OVERHEAD_BYTES = 320;
/** What one once-mark source (Kafka ingest) costs in a log. */
const MARK_OVERHEAD_BYTES = 96;
/**
 * Channels share this many empty epochs, by a hash of their name: dropping a log changes the
 * empty epoch of its slot only, so a drop makes a recovery at offset 0 answer `recovered:false`
 * for 1 channel name in this many (a fixed 20 KB or so, whatever the number of names).
 */
export const EMPTY_EPOCH_SLOTS = 1024;
/** Most logs dropped for --history-ttl in one step (one publish or read). */
const SWEEP_STEP = 64;

interface ChannelLog {
  epoch: string;
  offset: number;
  messages: StoredMessage[];
  /** When the log is dropped (ms), unless a message comes first; Infinity with --history-ttl 0. */
  expiresAt: number;
  /** What the log counts against --history-max-bytes. */
  bytes: number;
  /** {@link OutgoingMessage.once}: per source, the last position published (kept with the log). */
  marks?: Map<string, number>;
}

interface SharedState {
  /** Least recently written first: a publish moves its channel to the end. */
  readonly logs: Map<string, ChannelLog>;
  /** The sum of the logs' bytes. */
  bytes: number;
  /** The empty epochs, by slot ({@link emptyEpochOf}); filled on first use. */
  readonly emptyEpochs: Array<string | undefined>;
  readonly presence: Map<string, Map<string, PresenceEntry & { readonly node: string }>>;
  /** --webhook: channel → node → live subscribers. */
  readonly occupancy: Map<string, Map<string, number>>;
  /** --webhook: channel → user → node → connections. */
  readonly members: Map<string, Map<string, Map<string, number>>>;
}

const shared = new WeakMap<object, SharedState>();

/**
 * Idempotency keys (OutgoingMessage.idempotency) of the nodes of one broker: apart from the logs,
 * so a key outlives its channel's history (--history-size 0, a log expired or evicted) for its
 * whole window; capped in bytes of their own (stores/idempotency.ts).
 */
const idempotencyKeys = new WeakMap<object, IdempotencyKeys>();

function stateOf(owner: object): SharedState {
  let state = shared.get(owner);
  if (!state) {
    state = { logs: new Map(), bytes: 0, emptyEpochs: [], presence: new Map(), occupancy: new Map(), members: new Map() };
    shared.set(owner, state);
  }
  return state;
}


/** The slot of `channel` among the {@link EMPTY_EPOCH_SLOTS} empty epochs (FNV-1a of its UTF-16 units). */
function slotOf(channel: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < channel.length; i++) hash = Math.imul(hash ^ channel.charCodeAt(i), 0x01000193);
  return (hash >>> 0) % EMPTY_EPOCH_SLOTS;
}

/** What a log of `channel` with no message counts against --history-max-bytes. */
function channelBytes(channel: string): number {
  return CHANNEL_OVERHEAD_BYTES + 2 * channel.length;
}

/** What one retained message counts: its data's UTF-8 length (never below what V8 keeps) plus the overhead. */
function messageBytes(data: string): number {
  return Buffer.byteLength(data) + MESSAGE_OVERHEAD_BYTES;
}

/** Why a log left the store: it aged past --history-ttl, or it was evicted for --history-max-bytes. */
export type DropReason = 'expired' | 'evicted';

export interface MemoryStoreOptions {
  readonly historySize: number;
  /** Seconds; 0 keeps history forever. */
  readonly historyTtl: number;
  /** A channel's own ttl in seconds (its namespace's `history-ttl`), when channels differ; else `historyTtl` for all. */
  readonly historyTtlOf?: (channel: string) => number;
  /** --history-max-bytes: what all logs may count together (see the overheads above); 0 for no cap. */
  readonly historyMaxBytes: number;
  /** Hands a payload to the bus synchronously; throws when the bus cannot take it. */
  readonly deliver: (topic: string, payload: Buffer) => void;
  /** True while the bus can take a payload (checked before an offset is assigned). */
  readonly connected: () => boolean;
  /** A channel's log left the store (for the history metrics). */
  readonly dropped?: (channel: string, reason: DropReason) => void;
}

export class MemoryChannelStore implements ChannelStore {
  readonly kind = 'memory';
  private readonly state: SharedState;
  private readonly logs: Map<string, ChannelLog>;
  private readonly keys: IdempotencyKeys;

  /** `broker`: the shared broker, or any object standing for "this process" when there is none. */
  constructor(broker: MemoryBroker | object, private readonly options: MemoryStoreOptions) {
    this.state = stateOf(broker);
    this.logs = this.state.logs;
    let keys = idempotencyKeys.get(broker);
    if (!keys) idempotencyKeys.set(broker, (keys = new IdempotencyKeys()));
    this.keys = keys;
  }

  /** Bytes all logs count against --history-max-bytes (shared by the nodes of one broker), for tests. */
  get bytes(): number {
    return this.state.bytes;
  }

  /** Channels with a log (shared by the nodes of one broker), for tests. */
  get size(): number {
    return this.logs.size;
  }

  /** The epoch a channel with no log answers (see the contract note at the top). */
  private emptyEpochOf(channel: string): string {
    const slots = this.state.emptyEpochs;
    const slot = slotOf(channel);
    return (slots[slot] ??= newEpoch());
  }

  /** The channel's log, unless it has none or it expired (then it is dropped now). */
  private live(channel: string, now: number): ChannelLog | undefined {
    const log = this.logs.get(channel);
    if (log && log.expiresAt <= now) {
      this.drop(channel, log, 'expired');
      return undefined;
    }
    return log;
  }

  private drop(channel: string, log: ChannelLog, reason: DropReason): void {
    this.logs.delete(channel);
    this.state.bytes -= log.bytes;
    // A subscriber at offset 0 of this slot's empty epoch may have seen this log: it must not
    // take the next log of the channel for the same one.
    this.state.emptyEpochs[slotOf(channel)] = undefined;
    this.options.dropped?.(channel, reason);
  }

  private expiry(now: number, channel: string): number {
    const ttl = this.options.historyTtlOf?.(channel) ?? this.options.historyTtl;
    return ttl > 0 ? now + ttl * 1000 : Infinity;
  }

  async publish(message: OutgoingMessage): Promise<PublishResult> {
    if (!this.options.connected()) throw new BusUnavailableError('memory bus is not connected');
    const now = Date.now();
    const { channel, once, idempotency } = message;
    // Checked and recorded in the same synchronous step as the publish: one node at a time.
    const first = idempotency && this.keys.find(channel, idempotency.key, now);
    if (first) return { ...first, duplicate: true };
    const found = this.live(channel, now);
    if (found && once && once.position <= (found.marks?.get(once.source) ?? -1)) return { offset: found.offset, epoch: found.epoch, duplicate: true };
    const epoch = found?.epoch ?? this.emptyEpochOf(channel);
    const offset = (found?.offset ?? 0) + 1;
    // Deliver first: if the bus throws, the offset is not taken and nothing is stored.
    this.options.deliver(message.topic, buildMessagePayload(channelPayloadHead(message.channel, message.origin), offset, epoch, message.data));
    const log = found ?? { epoch, offset: 0, messages: [], expiresAt: 0, bytes: channelBytes(channel) };
    if (found) this.logs.delete(channel);
    else this.state.bytes += log.bytes;
    // Written last: to the end of the order.
    this.logs.set(channel, log);
    if (once) {
      if (!log.marks?.has(once.source)) this.grow(log, MARK_OVERHEAD_BYTES + 2 * once.source.length);
      (log.marks ??= new Map()).set(once.source, once.position);
    }
    log.offset = offset;
    if (idempotency) this.keys.remember(channel, idempotency.key, { offset, epoch }, now + idempotency.window * 1000);
    log.expiresAt = this.expiry(now, channel);
    const size = this.options.historySize;
    if (size > 0) {
      log.messages.push({ offset, data: message.data });
      this.grow(log, messageBytes(message.data));
      if (log.messages.length > size) this.trim(log, log.messages.length - size);
    }
    this.sweep(now);
    this.enforceCap(log);
    return { offset, epoch };
  }

  async read(channel: string, options: ReadOptions = {}): Promise<ReadResult> {
    const now = Date.now();
    this.sweep(now);
    const log = this.live(channel, now);
    if (options.fence) {
      if (!this.options.connected()) throw new BusUnavailableError('memory bus is not connected');
      this.options.deliver(options.fence.topic, options.fence.payload);
    }
    const offset = log?.offset ?? 0;
    const epoch = log?.epoch ?? this.emptyEpochOf(channel);
    const messages = log?.messages ?? [];
    const since = options.since;
    if (since) {
      if (since.epoch !== epoch || since.offset > offset) return { offset, epoch, messages: [], covered: false, more: false };
      if (since.offset === offset) return { offset, epoch, messages: [], covered: true, more: false };
      const first = messages[0];
      if (!first || first.offset > since.offset + 1) return { offset, epoch, messages: [], covered: false, more: false };
      return { offset, epoch, messages: messages.slice(since.offset + 1 - first.offset), covered: true, more: false };
    }
    return { offset, epoch, ...latestPage(messages, options), covered: true };
  }

  private grow(log: ChannelLog, bytes: number): void {
    log.bytes += bytes;
    this.state.bytes += bytes;
  }

  /** Drops the `count` oldest messages of `log`. */
  private trim(log: ChannelLog, count: number): void {
    let bytes = 0;
    for (let i = 0; i < count; i++) bytes += messageBytes(log.messages[i]!.data);
    log.messages.splice(0, count);
    this.grow(log, -bytes);
  }

  /**
   * Drops logs that aged past --history-ttl, from the front (the least recently written expire
   * first), at most {@link SWEEP_STEP} per call: idle channels go without a scan of them all.
   * With per-namespace ttls the order is by last write, not by expiry: a log with a short ttl
   * behind one with a longer ttl waits for it (or for a read of it, {@link live}, or the byte cap).
   */
  private sweep(now: number): void {
    if (this.options.historyTtl <= 0 && !this.options.historyTtlOf) return;
    let step = SWEEP_STEP;
    for (const [channel, log] of this.logs) {
      if (log.expiresAt > now || step-- === 0) return;
      this.drop(channel, log, 'expired');
    }
  }

  /**
   * --history-max-bytes: evicts the least recently written channels whole until the logs fit.
   * The channel just written is last in line; if it alone is past the cap, its oldest messages go
   * (its position stays, so a recovery from before them answers `recovered:false`).
   */
  private enforceCap(log: ChannelLog): void {
    const cap = this.options.historyMaxBytes;
    if (cap <= 0) return;
    for (const [channel, oldest] of this.logs) {
      if (this.state.bytes <= cap) return;
      if (oldest === log) break;
      this.drop(channel, oldest, 'evicted');
    }
    let count = 0;
    let excess = this.state.bytes - cap;
    while (excess > 0 && count < log.messages.length) excess -= messageBytes(log.messages[count++]!.data);
    if (count > 0) this.trim(log, count);
  }

  async close(): Promise<void> {}
}

export class MemoryPresenceStore implements PresenceStore {
  readonly kind = 'memory';
  private readonly channels: SharedState['presence'];

  constructor(broker: MemoryBroker | object, private readonly node: string) {
    this.channels = stateOf(broker).presence;
  }

  async join(channel: string, entry: PresenceEntry): Promise<void> {
    let clients = this.channels.get(channel);
    if (!clients) this.channels.set(channel, (clients = new Map()));
    clients.set(entry.client, { ...entry, node: this.node });
  }

  async leave(channel: string, client: string): Promise<void> {
    const clients = this.channels.get(channel);
    if (!clients) return;
    clients.delete(client);
    if (clients.size === 0) this.channels.delete(channel);
  }

  async list(channel: string): Promise<PresenceEntry[]> {
    return [...(this.channels.get(channel)?.values() ?? [])].map(({ client, user, meta }) => (meta === undefined ? { client, user } : { client, user, meta }));
  }

  /** In one process a node cannot die without its clients closing: nothing to sweep. */
  start(): void {}

  async close(): Promise<void> {
    for (const [channel, clients] of this.channels) {
      for (const [client, entry] of clients) if (entry.node === this.node) clients.delete(client);
      if (clients.size === 0) this.channels.delete(channel);
    }
  }
}

/**
 * Occupancy in process: every node of one memory broker shares the counts, so an in-process
 * cluster reports each crossing once. A node here cannot die without its clients closing, so
 * there is nothing to sweep.
 */
export class MemoryOccupancyStore implements OccupancyStore {
  readonly kind = 'memory';
  private readonly state: SharedState;

  constructor(broker: MemoryBroker | object, private readonly node: string) {
    this.state = stateOf(broker);
  }

  async update(change: OccupancyChange): Promise<OccupancyEvent[]> {
    const { channel } = change;
    const events: OccupancyEvent[] = [];
    const nodes = this.state.occupancy.get(channel) ?? new Map<string, number>();
    const before = nodes.size > 0;
    if (change.subscribers > 0) nodes.set(this.node, change.subscribers);
    else nodes.delete(this.node);
    if (nodes.size > 0) this.state.occupancy.set(channel, nodes);
    else this.state.occupancy.delete(channel);
    if (!before && nodes.size > 0) events.push({ name: 'channel_occupied', channel });
    for (const [user, count] of change.users) {
      const users = this.state.members.get(channel) ?? new Map<string, Map<string, number>>();
      const byNode = users.get(user) ?? new Map<string, number>();
      const had = byNode.size > 0;
      if (count > 0) byNode.set(this.node, count);
      else byNode.delete(this.node);
      if (byNode.size > 0) users.set(user, byNode);
      else users.delete(user);
      if (users.size > 0) this.state.members.set(channel, users);
      else this.state.members.delete(channel);
      if (!had && byNode.size > 0) events.push({ name: 'member_added', channel, user });
      if (had && byNode.size === 0) events.push({ name: 'member_removed', channel, user });
    }
    if (before && nodes.size === 0) events.push({ name: 'channel_vacated', channel });
    return events;
  }

  start(): void {}
}
