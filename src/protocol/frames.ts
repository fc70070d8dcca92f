/**
 * The channel protocol at `/ws/v1`: JSON text frames, discriminated by `type`. docs/protocol.md
 * documents them; the client SDK imports these same types (type-only, so the browser bundle
 * needs nothing from the server).
 *
 * Client → server frames may carry a numeric `id`; the reply (or error) echoes it.
 */
import type { ProtocolErrorCode } from './codes.js';

/** Any JSON value a publisher sends as `data`. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** Where a client left off in a channel: the last offset it saw, in the channel's epoch. */
export interface StreamPosition {
  readonly offset: number;
  readonly epoch: string;
}

// ------------------------------------------------------------------ client → server

export interface SubscribeFrame {
  readonly type: 'subscribe';
  readonly channel: string;
  readonly id?: number;
  /** Recover what was published after this position before the live stream starts. */
  readonly since?: StreamPosition;
  /**
   * A subscription token (docs/auth.md): a JWT with `sub` = the connection's user, `channel` = this
   * channel and `exp`, for a channel the connection's patterns do not allow. It holds the
   * subscription until its `exp`; refresh it with a {@link RefreshFrame} naming the channel.
   */
  readonly token?: string;
  /** Ask for delta compression: on a channel whose namespace has `delta: fossil`, live messages after the first come as {@link DeltaMessageFrame}s. */
  readonly delta?: boolean;
}

export interface UnsubscribeFrame {
  readonly type: 'unsubscribe';
  readonly channel: string;
  readonly id?: number;
}

export interface PublishFrame {
  readonly type: 'publish';
  readonly channel: string;
  readonly data: Json;
  readonly id?: number;
  /**
   * Makes the publish safe to retry: another publish of the channel with the same key within the
   * namespace's idempotency-window stores nothing and is acked `duplicate` with the first one's
   * offset. 1–128 printable ASCII characters, no space (decode.ts {@link IDEMPOTENCY_KEY}).
   */
  readonly idempotency_key?: string;
}

export interface HistoryRequestFrame {
  readonly type: 'history';
  readonly channel: string;
  readonly limit?: number;
  /** Only messages older than this offset: the next page back (the first offset of the previous page). */
  readonly before?: number;
  readonly id?: number;
}

export interface PresenceRequestFrame {
  readonly type: 'presence';
  readonly channel: string;
  readonly id?: number;
}

/**
 * A new token for the connection (no `channel`: its JWT, same `sub`), or for one subscription held
 * by a subscription token (`channel`). Answered `refreshed`, or `error` `unauthorized` (the old
 * token stands until its own `exp`).
 */
export interface RefreshFrame {
  readonly type: 'refresh';
  readonly token: string;
  readonly channel?: string;
  readonly id?: number;
}

export type ClientFrame = SubscribeFrame | UnsubscribeFrame | PublishFrame | HistoryRequestFrame | PresenceRequestFrame | RefreshFrame;

// ------------------------------------------------------------------ server → client

export interface ConnectedFrame {
  readonly type: 'connected';
  readonly client: string;
  readonly node: string;
  /** When the connection's identity expires (unix seconds: the JWT's `exp`, the connect hook's `expires_at`), if it does. */
  readonly expires?: number;
  /**
   * Seconds between the node's `ping` frames to an idle connection (--heartbeat; absent when off).
   * The node writes some frame at least every 1.5 × `ping` seconds: longer silence means the link is dead.
   */
  readonly ping?: number;
  /** On the SSE transport: the session id to POST client frames to (`POST /ws/v1/sse/{session}`) and to resume with; absent on a WebSocket. */
  readonly session?: string;
}

/** The node's application-level ping: sent when nothing else was written to the connection for a whole `ping` interval. Needs no answer. */
export interface PingFrame {
  readonly type: 'ping';
}

export interface SubscribedFrame {
  readonly type: 'subscribed';
  readonly channel: string;
  readonly id?: number;
  /** The channel's latest offset when the subscription started. */
  readonly offset: number;
  readonly epoch: string;
  /** With `since`: true when every missed message was sent before this frame; false when the gap could not be covered (reload state). */
  readonly recovered?: boolean;
  /** What the back end's subscribe hook gave for this subscription (docs/hooks.md), when it gave something. */
  readonly data?: Json;
  /** True for a subscription the server made (`POST /api/users/{user}/subscribe`), which the client did not ask for. */
  readonly server?: true;
  /** A subscription held by a subscription token: when the token expires (unix seconds). */
  readonly expires?: number;
  /** True when the subscription asked for deltas and the channel has them: live messages may come as {@link DeltaMessageFrame}s. */
  readonly delta?: boolean;
  /**
   * A last-value channel's (`cache: true`) latest message when it has one and the subscription
   * did not recover: the live messages after this frame continue from its offset, nothing lost
   * or repeated between them (docs/protocol.md, "Last-value channels").
   */
  readonly latest?: LatestMessage;
}

/** A channel's latest message, as `subscribed` carries it. */
export interface LatestMessage {
  readonly offset: number;
  readonly data: Json;
}

/**
 * Why the server ended a subscription the client did not unsubscribe: `forbidden` (a refreshed
 * identity no longer allows the channel), `expired` (its subscription token expired unrefreshed),
 * `server` (the back end took it away: `POST /api/users/{user}/unsubscribe`).
 */
export type UnsubscribeReason = 'forbidden' | 'expired' | 'server';

export interface UnsubscribedFrame {
  readonly type: 'unsubscribed';
  readonly channel: string;
  readonly id?: number;
  /** Set when the server ended the subscription on its own (no `id` then). */
  readonly reason?: UnsubscribeReason;
}

/** The answer to a {@link RefreshFrame}: the new token holds until `expires` (unix seconds; absent: it does not expire). */
export interface RefreshedFrame {
  readonly type: 'refreshed';
  readonly id?: number;
  /** Set when a subscription token was refreshed. */
  readonly channel?: string;
  readonly expires?: number;
}


export interface AckFrame {
  readonly type: 'ack';
  readonly id?: number;
  readonly offset: number;
  /** The publish carried an `idempotency_key` already used in the window: nothing was stored, `offset` is the first publish's. */
  readonly duplicate?: true;
}

export interface MessageFrame {
  readonly type: 'message';
  readonly channel: string;
  readonly offset: number;
  /** The channel's epoch (the server always sends it): a change means history was lost and offsets restarted. */
  readonly epoch?: string;
  readonly data: Json;
}

/**
 * A live message of a delta subscription, sent instead of {@link MessageFrame} once the
 * subscriber holds the channel's previous message: `delta` is a fossil delta from the UTF-8 bytes
 * of the previous message's `data` JSON text (as it was sent) to this one's, as a string
 * (src/protocol/message-text.ts, docs/protocol.md).
 */
export interface DeltaMessageFrame {
  readonly type: 'message';
  readonly channel: string;
  readonly offset: number;
  readonly epoch?: string;
  readonly encoding: 'fossil';
  readonly delta: string;
}

export interface HistoryEntry {
  readonly offset: number;
  readonly data: Json;
}

export interface HistoryFrame {
  readonly type: 'history';
  readonly channel: string;
  readonly id?: number;
  readonly epoch: string;
  /** The channel's latest offset (the server always sends it). */
  readonly offset?: number;
  /** Oldest first; at most 256 KB of data per page (always at least one message). */
  readonly messages: readonly HistoryEntry[];
  /** True when history holds older messages: ask again with `before` = the first message's offset. */
  readonly more?: boolean;
}

export interface PresenceClient {
  readonly client: string;
  readonly user: string | null;
  /** The connection's `meta` from the connect hook (e.g. `{"name":"Alice"}`), when it has one of at most 1 KiB of JSON. */
  readonly meta?: Json;
}

export interface PresenceFrame {
  readonly type: 'presence';
  readonly channel: string;
  readonly id?: number;
  readonly clients: readonly PresenceClient[];
  /** True when the list was cut at 256 KB (a very large channel). */
  readonly more?: boolean;
}

export interface JoinLeaveFrame {
  readonly type: 'join' | 'leave';
  readonly channel: string;
  readonly client: string;
  readonly user: string | null;
  /** As in {@link PresenceClient}. */
  readonly meta?: Json;
}

/** Error codes of `error` frames: the registry's (protocol/codes.ts ERROR_CODES) that a socket can get. */
export type ErrorCode = ProtocolErrorCode;

export interface ErrorFrame {
  readonly type: 'error';
  readonly id?: number;
  readonly code: ErrorCode;
  readonly message: string;
  readonly channel?: string;
}

export type ServerFrame =
  | ConnectedFrame
  | SubscribedFrame
  | UnsubscribedFrame
  | RefreshedFrame
  | AckFrame
  | MessageFrame
  | DeltaMessageFrame
  | HistoryFrame
  | PresenceFrame
  | JoinLeaveFrame
  | ErrorFrame
  | PingFrame;

/** The WebSocket path of the channel protocol. */
export const CHANNEL_PATH = '/ws/v1';
/** The SSE transport of the channel protocol: `GET` opens (or resumes) a session's stream, `POST SSE_PATH/{session}` takes its client frames. */
export const SSE_PATH = '/ws/v1/sse';
