/**
 * In-process history and presence: the stores of the memory bus. Their state is shared by every
 * node on one {@link MemoryBroker}, so a cluster of in-process nodes behaves like one on Redis.
 * Publishing is synchronous up to the bus hand-off, which keeps offsets and delivery in step.
 */
import { randomBytes } from 'node:crypto';
import type { MemoryBroker } from '../bus/memory.js';
import { TIMINGS } from '../config/defaults.js';
import { BusUnavailableError } from '../errors.js';
import { buildMessagePayload } from '../protocol/message-frame.js';
import { latestPage } from './page.js';
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
} from './store.js';

interface ChannelLog {
  epoch: string;
  offset: number;
  messages: StoredMessage[];
  /** When the log is dropped (ms), unless a message comes first; Infinity with --history-ttl 0. */
  expiresAt: number;
  /** {@link OutgoingMessage.once}: per source, the last position published (kept with the log). */
  marks?: Map<string, number>;
}

interface SharedState {
  readonly logs: Map<string, ChannelLog>;
  readonly presence: Map<string, Map<string, PresenceEntry & { readonly node: string }>>;
  /** --webhook: channel → node → live subscribers. */
  readonly occupancy: Map<string, Map<string, number>>;
  /** --webhook: channel → user → node → connections. */
  readonly members: Map<string, Map<string, Map<string, number>>>;
}

const shared = new WeakMap<object, SharedState>();

function stateOf(owner: object): SharedState {
  let state = shared.get(owner);
  if (!state) shared.set(owner, (state = { logs: new Map(), presence: new Map(), occupancy: new Map(), members: new Map() }));
  return state;
}

export function newEpoch(): string {
  return randomBytes(8).toString('hex');
}

export interface MemoryStoreOptions {
  readonly historySize: number;
  /** Seconds; 0 keeps history forever. */
  readonly historyTtl: number;
  /** Hands a payload to the bus synchronously; throws when the bus cannot take it. */
  readonly deliver: (topic: string, payload: Buffer) => void;
  /** True while the bus can take a payload (checked before an offset is assigned). */
  readonly connected: () => boolean;
}

export class MemoryChannelStore implements ChannelStore {
  readonly kind = 'memory';
  private readonly logs: Map<string, ChannelLog>;

  /** `broker`: the shared broker, or any object standing for "this process" when there is none. */
  constructor(broker: MemoryBroker | object, private readonly options: MemoryStoreOptions) {
    this.logs = stateOf(broker).logs;
  }

  private log(channel: string, now = Date.now()): ChannelLog {
    let log = this.logs.get(channel);
    if (!log || log.expiresAt <= now) {
      log = { epoch: newEpoch(), offset: 0, messages: [], expiresAt: this.expiry(now) };
      this.logs.set(channel, log);
    }
    return log;
  }

  private expiry(now: number): number {
    return this.options.historyTtl > 0 ? now + this.options.historyTtl * 1000 : Infinity;
  }

  async publish(message: OutgoingMessage): Promise<PublishResult> {
    if (!this.options.connected()) throw new BusUnavailableError('memory bus is not connected');
    const now = Date.now();
    const log = this.log(message.channel, now);
    const once = message.once;
    if (once && once.position <= (log.marks?.get(once.source) ?? -1)) return { offset: log.offset, epoch: log.epoch, duplicate: true };
    const offset = log.offset + 1;
    // Deliver first: if the bus throws, the offset is not taken and nothing is stored.
    this.options.deliver(message.topic, buildMessagePayload(message.head, offset, log.epoch, message.data));
    if (once) (log.marks ??= new Map()).set(once.source, once.position);
    log.offset = offset;
    log.expiresAt = this.expiry(now);
    const size = this.options.historySize;
    if (size > 0) {
      log.messages.push({ offset, data: message.data });
      if (log.messages.length > size) log.messages.splice(0, log.messages.length - size);
    }
    this.sweep(now);
    return { offset, epoch: log.epoch };
  }

  async read(channel: string, options: ReadOptions = {}): Promise<ReadResult> {
    const log = this.log(channel);
    if (options.fence) {
      if (!this.options.connected()) throw new BusUnavailableError('memory bus is not connected');
      this.options.deliver(options.fence.topic, options.fence.payload);
    }
    const { offset, epoch, messages } = log;
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

  /** Drops expired logs now and then, so idle channels do not pile up. */
  private lastSweep = 0;
  private sweep(now: number): void {
    if (now - this.lastSweep < TIMINGS.memoryHistorySweepMs) return;
    this.lastSweep = now;
    for (const [channel, log] of this.logs) if (log.expiresAt <= now) this.logs.delete(channel);
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
    return [...(this.channels.get(channel)?.values() ?? [])].map(({ client, user }) => ({ client, user }));
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
