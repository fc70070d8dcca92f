/**
 * History, recovery and presence stores: the interfaces the channel layer uses. The bus payload
 * a publish produces is laid out in protocol/message-frame.ts.
 *
 * Guarantee of {@link ChannelStore.publish}: assigning the offset, appending to history and
 * handing the message to the bus happen as one step per channel, so on every node messages of a
 * channel arrive in offset order, and a message is in history no later than it is delivered.
 * Offsets increase within an epoch; they need not be consecutive. The memory and Redis stores
 * count 1, 2, 3… per channel and start a new epoch (a random id) when a channel's history is gone
 * (expired after --history-ttl without messages, or the broker lost it); the JetStream store uses
 * the stream's sequence numbers (shared by every channel of the stream, so a channel's offsets
 * jump) and the stream's identity as the epoch.
 */
import type { RawEntry } from '../protocol/encode.js';

/** A channel's latest offset and its epoch. */
export interface ChannelPosition {
  readonly offset: number;
  readonly epoch: string;
}

/** One retained message; `data` is its JSON text, as published (the protocol's {@link RawEntry}). */
export type StoredMessage = RawEntry;

export interface ReadOptions {
  /** Recovery: every retained message after this position. */
  readonly since?: ChannelPosition;
  /** The latest `limit` messages (when `since` is not given). */
  readonly limit?: number;
  /** With `limit`: only messages older than this offset (paging back through history). */
  readonly before?: number;
  /** With `limit`: stop once the messages' data passes this many bytes (at least one message is returned). */
  readonly maxBytes?: number;
  /**
   * A payload to put on the bus at the point of the read in the channel's message stream (in the
   * same Redis script, or right after the read in memory). A node that receives it knows every
   * message it got before it is in the read's result and every message after it is newer: that is
   * how a subscription joins the live stream with nothing lost and nothing twice.
   */
  readonly fence?: { readonly topic: string; readonly payload: Buffer };
}

export interface ReadResult extends ChannelPosition {
  /** Oldest first. */
  readonly messages: readonly StoredMessage[];
  /**
   * With `since`: true when `messages` holds every message after it (same epoch, gap still in
   * history); false when the client must reload. Without `since`: always true.
   */
  readonly covered: boolean;
  /** Without `since`: true when history holds messages older than the first one returned. */
  readonly more: boolean;
  /**
   * Without `since`: every message of the channel after this offset (up to `offset`) is in
   * `messages`, so a subscriber at a position from here to `offset` recovers from them. Stores
   * whose offsets are consecutive leave it out: it is then the first message's offset - 1 (or
   * `offset` when there is none).
   */
  readonly completeAfter?: number;
}

/** What a publish hands to the store: enough to build the bus payload without knowing the protocol. */
export interface OutgoingMessage {
  readonly channel: string;
  /** The bus topic of the channel. */
  readonly topic: string;
  /** Bus payload up to the offset digits: envelope header + messageHead(channel) (protocol/message-frame.ts). */
  readonly head: Buffer;
  /** The message's data as JSON text. */
  readonly data: string;
  /**
   * A message taken from a log that may hand it over again (Kafka ingest after a crash or a
   * rebalance): `source` names the log's partition, `position` the message's place in it. The
   * store publishes it only when `position` is above the last one it published for `source` in
   * this channel, checked and moved in the same atomic step as the publish; otherwise nothing is
   * stored or delivered and the result says `duplicate`.
   */
  readonly once?: { readonly source: string; readonly position: number };
}

/** What a publish gives: the channel's position, and whether {@link OutgoingMessage.once} found the message already published. */
export interface PublishResult extends ChannelPosition {
  readonly duplicate?: boolean;
  /**
   * How many messages the channel's history holds with this one, when the store's offsets do
   * not tell (log offsets jump); left out, it is min(offset, --history-size), which is right
   * for offsets that count 1, 2, 3… Null: the store cannot say cheaply (no gauge update).
   */
  readonly retained?: number | null;
}

export interface ChannelStore {
  readonly kind: string;
  /** Assigns the next offset, appends to history and delivers on the bus, atomically per channel. Rejects with BusUnavailableError. */
  publish(message: OutgoingMessage): Promise<PublishResult>;
  /** The position (creating the channel's epoch if it has none) and the messages asked for. Rejects with BusUnavailableError. */
  read(channel: string, options?: ReadOptions): Promise<ReadResult>;
  close(): Promise<void>;
}

/** A client present in a channel. */
export interface PresenceEntry {
  readonly client: string;
  readonly user: string | null;
}

/** Called for each client of a dead node that a presence sweep removed. */
export type DepartedHandler = (channel: string, entry: PresenceEntry) => void;

export interface PresenceStore {
  readonly kind: string;
  join(channel: string, entry: PresenceEntry): Promise<void>;
  leave(channel: string, client: string): Promise<void>;
  /** Clients present, live nodes only. */
  list(channel: string): Promise<PresenceEntry[]>;
  /** Starts this node's heartbeats and the sweep of dead nodes' entries. */
  start(onDeparted: DepartedHandler): void;
  /** Stops heartbeats and removes this node's entries. */
  close(): Promise<void>;
}

/** A crossing of a cluster-wide count (docs/hooks.md, "Webhooks"): each is reported to exactly one node. */
export interface OccupancyEvent {
  readonly name: 'channel_occupied' | 'channel_vacated' | 'member_added' | 'member_removed';
  readonly channel: string;
  /** member_added / member_removed. */
  readonly user?: string;
}

/** This node's counts in one channel, as absolute numbers (so a change can be written again safely). */
export interface OccupancyChange {
  readonly channel: string;
  /** This node's live subscribers of the channel. */
  readonly subscribers: number;
  /** This node's connections per user in the channel (presence channels), for the users that changed; 0 removes. */
  readonly users: ReadonlyArray<readonly [user: string, connections: number]>;
}

/**
 * Cluster-wide occupancy (subscribers anywhere) and membership (a user's connections anywhere)
 * per channel, for --webhook. Each node writes its own counts; the store says which writes
 * crossed 0↔1 cluster-wide, atomically, so exactly one node in the cluster hears each crossing.
 */
export interface OccupancyStore {
  readonly kind: string;
  /** Sets this node's counts; resolves with the crossings it caused. Rejects with BusUnavailableError. */
  update(change: OccupancyChange): Promise<OccupancyEvent[]>;
  /**
   * Starts the sweep of dead nodes' counts (with the presence heartbeats); `onSwept` gets the
   * crossings a sweep caused, on the one node that swept, and those of this node's own counts
   * removed on close.
   */
  start(onSwept: (events: readonly OccupancyEvent[]) => void): void;
}
