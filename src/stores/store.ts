/**
 * History, recovery and presence stores: the interfaces the channel layer uses, and their
 * contracts. Every store that implements a kind keeps its contract; one suite proves it against
 * each (test/helpers/store-conformance.ts), and a behaviour it does not test is one
 * nobody promised. The bus payload a publish produces is laid out in protocol/message-frame.ts.
 *
 * Which store implements which kind: channels on memory, Redis, JetStream and Kafka; presence on
 * all four; occupancy on memory (one process's cluster) and Redis; revocations on all four (Kafka
 * and NATS beside their presence, in the compacted topic and the KV bucket). Memory sweeps no dead node: in
 * one process a node cannot die without its clients closing.
 *
 * Errors: every call that cannot be served rejects with BusUnavailableError, whose message
 * reaches clients (`unavailable`), so it never carries a broker's own error text (that stays in
 * `cause`).
 */
import type { RawEntry } from '../protocol/encode.js';
import type { Json } from '../protocol/frames.js';

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
   * how a subscription joins the live stream with nothing lost and nothing twice. A store that
   * cannot read in the same step as the fence (JetStream) may read past it: `offset` is then the
   * newest message read, the read returns only after the node got every message up to it, and
   * the node drops those it got after the fence (the same epoch, at most `offset`).
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

/** What a publish hands to the store; the store builds the bus payload from it (protocol/message-frame.ts, `channelPayloadHead`). */
export interface OutgoingMessage {
  readonly channel: string;
  /** The bus topic of the channel. */
  readonly topic: string;
  /** The publishing node's id: the payload's envelope names it as the origin. */
  readonly origin: string;
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
  /**
   * An idempotent publish (a client's or back end's `idempotency_key`, docs/protocol.md): the
   * first publish of `key` in this channel is stored; another with the same key within `window`
   * seconds of it stores and delivers nothing, and its result says `duplicate` with the first
   * publish's offset and epoch. Checked and recorded in the same atomic step as the publish.
   */
  readonly idempotency?: { readonly key: string; readonly window: number };
}

/**
 * What a publish gives: the channel's position, and whether {@link OutgoingMessage.once} or
 * {@link OutgoingMessage.idempotency} found the message already published (for an idempotency
 * key, the position is then the first publish's).
 */
export interface PublishResult extends ChannelPosition {
  readonly duplicate?: boolean;
  /**
   * How many messages the channel's history holds with this one, when the store's offsets do
   * not tell (log offsets jump); left out, it is min(offset, --history-size), which is right
   * for offsets that count 1, 2, 3… Null: the store cannot say cheaply (no gauge update).
   */
  readonly retained?: number | null;
}

/**
 * A channel's history and the order of its messages. The contract:
 *
 * - **Append.** {@link publish} assigns the offset, appends to history and hands the message to
 *   the bus as one step per channel: on every node a channel's messages arrive in offset order,
 *   each once while the node's route is up, and a message is in history no later than it is
 *   delivered. A publish that resolves was stored; one that rejects was not delivered by this
 *   call (a broker that lost the reply may still have stored it).
 * - **Offsets** increase within an epoch, per channel; they need not be consecutive (JetStream and
 *   Kafka share their log's positions between channels). Compare them by order only.
 * - **Epoch.** A channel's run of offsets. Memory and Redis: a random id per channel, replaced
 *   (offsets restart at 1) when its history is gone (--history-ttl without a message, evicted,
 *   flushed). JetStream: the stream's identity; Kafka: the topic's id and partition count.
 *   A read with a fence (a subscription joining, a node catching up) of a channel that holds
 *   nothing returns the position the channel's next publish continues (same epoch): on Redis it
 *   creates the epoch, which expires after --history-ttl (300 s with 0) unless a message comes.
 *   A read without a fence creates nothing: on a channel with no epoch it answers offset 0 and
 *   an epoch nothing stores, from which no recovery is ever covered.
 * - **Recovery** (`since`): `covered` with every message after `since` exactly when the epoch is
 *   the same, `since` is not past the channel's offset, and history still holds every message
 *   after it; otherwise `covered: false` and no messages (the client reloads). Never a silently
 *   short answer: a store that cannot prove nothing was dropped says false.
 * - **Paging** (`limit`, `before`, `maxBytes`): the latest `limit` messages older than `before`,
 *   oldest first, stopping before `maxBytes` of data but with at least one message; `more` when
 *   history holds older ones. `before` at or below 1 (offsets start at 1) answers no messages
 *   and `more: false`; a `before` past the head is the same as none.
 * - **Retention.** At most --history-size messages per channel are answered (0 keeps none), and a
 *   channel's history goes --history-ttl seconds after its last message (0: no age limit); with
 *   namespaces, its own namespace's `history-ttl` (memory and Redis expire it then; JetStream and
 *   Kafka keep the longest and answer a channel past its own as holding nothing). What a
 *   store holds in process is capped in bytes (--history-max-bytes: memory, the Kafka index);
 *   what it holds in a broker is the broker's to bound (docs/brokers.md, docs/operations.md).
 * - **Once-marks** ({@link OutgoingMessage.once}): the same source and position handed over again,
 *   from any node, even at the same moment, is stored and delivered once; the result of the
 *   repeat says `duplicate`. Memory, Redis and Kafka also refuse any position at or below the
 *   source's mark; JetStream refuses repeats within its duplicate window (the longest
 *   idempotency window, at least 2 minutes).
 * - **Idempotency keys** ({@link OutgoingMessage.idempotency}): the same key in the same channel
 *   within the window, from any node, even at the same moment, is stored and delivered once;
 *   every repeat is answered `duplicate` with the first publish's offset and epoch. Keys are per
 *   channel (one key in two channels is two messages), kept whatever the channel's history size
 *   (0 included), and a key published again after its window is a new message. JetStream keeps
 *   keys for the stream's one duplicate window (the longest of all namespaces); Kafka decides by
 *   the log's order (docs/brokers.md).
 */
export interface ChannelStore {
  readonly kind: string;
  /** Assigns the next offset, appends to history and delivers on the bus, atomically per channel. Rejects with BusUnavailableError. */
  publish(message: OutgoingMessage): Promise<PublishResult>;
  /** The position and the messages asked for (see the contract for what a read creates). Rejects with BusUnavailableError. */
  read(channel: string, options?: ReadOptions): Promise<ReadResult>;
  close(): Promise<void>;
}

/**
 * A client present in a channel: its id, its user, and its connection's `meta` when it has one
 * (the connect hook's, at most {@link MAX_PRESENCE_META_BYTES} of JSON; presence-entry.ts stores it).
 */
export interface PresenceEntry {
  readonly client: string;
  readonly user: string | null;
  readonly meta?: Json;
}

/** Most bytes of JSON a connection's `meta` may have to be shown in presence; a larger one stays with the connection and the hooks only. */
export const MAX_PRESENCE_META_BYTES = 1024;

/** Called for each client of a dead node that a presence sweep removed. */
export type DepartedHandler = (channel: string, entry: PresenceEntry) => void;

/**
 * What a presence store that sweeps dead nodes by heartbeat takes (NATS KV, Kafka): its keys'
 * prefix, its node, the ttl, and where it reports what no caller waits for.
 */
export interface SweptPresenceOptions {
  /** --bus-prefix: the first part of every key. */
  readonly prefix: string;
  readonly node: string;
  /** Seconds without a heartbeat after which a node's clients leave. */
  readonly ttl: number;
  readonly logError: (err: Error, what: string) => void;
  /** Says once what an operator must change (a topic that is not compacted, a server without JetStream). */
  readonly warn: (line: string) => void;
  /** Called when this node was swept as dead (its broker was away) and must register its clients again. */
  readonly rejoin: () => void;
}

/**
 * Who is present in a channel, cluster-wide. The contract:
 *
 * - **Join and leave** on any node; a {@link list} on any node shows the clients of every live
 *   node, each once (a list reads, it creates nothing). Closing a node's store removes its clients.
 * - **A dead node** (no heartbeat for --presence-ttl) is swept: its clients leave every list, and
 *   each is reported departed ({@link DepartedHandler}) by exactly one live node, however many
 *   sweep. (Memory: a node cannot die without its clients closing; nothing to sweep.)
 * - **Replay after reconnect.** A join or leave that could not be written while the broker was
 *   away is written once it is back (the latest per client wins); a node that was itself swept
 *   meanwhile is told to join its clients again (`rejoin`).
 */
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
 * per channel, for --webhook. Each node writes its own counts. The contract:
 *
 * - **Crossings once.** The store says which writes crossed 0↔1 cluster-wide, atomically, so
 *   each crossing (`channel_occupied`/`channel_vacated`, `member_added`/`member_removed`) is
 *   reported to exactly one node, also when nodes write at the same moment.
 * - **The dead-node sweep.** A dead node's counts go with its presence (same heartbeats); the
 *   crossings that causes are reported once, to the one node that swept (memory: none to sweep).
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

/**
 * A revoked token id (`kind: 'token'`, `id` its `jti`) or a revoked user's older tokens
 * (`kind: 'user'`, `id` the `sub`, refusing tokens with `iat` before `issuedBefore`). Times are
 * unix seconds; the entry is dropped by itself once `until` passes.
 */
export type RevocationEntry =
  | { readonly kind: 'token'; readonly id: string; readonly until: number }
  | { readonly kind: 'user'; readonly id: string; readonly issuedBefore: number; readonly until: number };

/** The store's key of an entry: one entry per token id, one per user. */
export function revocationKey(entry: Pick<RevocationEntry, 'kind' | 'id'>): string {
  return `${entry.kind === 'token' ? 't' : 'u'}:${entry.id}`;
}

/**
 * Revocations, cluster-wide (docs/auth.md, "Revocation"). Nodes keep a local copy fed by the bus
 * and read this store when they start and when their bus comes back, so the store is off the
 * upgrade's path. The contract:
 *
 * - **Cluster-wide.** An entry added on any node is in every node's {@link list} once `add`
 *   resolved.
 * - **One per key.** Adding an entry with the key of one that is there ({@link revocationKey})
 *   replaces it: the latest add wins.
 * - **Expiry.** An entry whose `until` has passed is never listed, and the store drops it by
 *   itself (no entry outlives its `until` by more than the store's own clean-up step).
 */
export interface RevocationStore {
  readonly kind: string;
  /** Records the entry. Rejects with BusUnavailableError. */
  add(entry: RevocationEntry): Promise<void>;
  /** Every entry whose `until` is still ahead. Rejects with BusUnavailableError. */
  list(): Promise<RevocationEntry[]>;
}

/** The entry a JSON value stands for, or undefined when it is not one (a value read back from a store or the bus). */
export function parseRevocation(value: unknown): RevocationEntry | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const v = value as Record<string, unknown>;
  if (typeof v.id !== 'string' || typeof v.until !== 'number' || !Number.isFinite(v.until)) return undefined;
  if (v.kind === 'token') return { kind: 'token', id: v.id, until: v.until };
  if (v.kind === 'user' && typeof v.issuedBefore === 'number' && Number.isFinite(v.issuedBefore)) return { kind: 'user', id: v.id, issuedBefore: v.issuedBefore, until: v.until };
  return undefined;
}
