/**
 * One WebSocket connection as the node sees it: who it is, which endpoint it is on, and its
 * socket. The parts of the node that keep something per connection keep it themselves, keyed by
 * the Client, and only while they have something to keep: the outbox its held frames
 * (node/outbox.ts; its frames of this turn are in the one slot below), the heartbeat wheel its
 * slot and state (node/heartbeat.ts), the rate limiters their buckets (transport/limits.ts), the
 * channel endpoint its subscriptions, hook calls and request budget (channels/). An idle connection's Client is its identity and
 * references: no per-socket timers or closures.
 */
import { randomUUID } from 'node:crypto';
import type { Socket } from 'node:net';
import type { WebSocket } from 'ws';
import type { Json } from '../protocol/frames.js';

/** Who the gate admitted: the JWT subject and claims, the connect hook's answer, or anonymous. */
export interface Identity {
  /** The token's `sub` (the connect hook's `user`), or undefined for an anonymous client. */
  readonly user: string | undefined;
  /** Channel patterns the token's `channels` claim (the hook's `channels`) allows, when given. */
  readonly channels: readonly string[] | undefined;
  /** Channel patterns it may publish to (the token's `publish` claim, the hook's `publish`); undefined: {@link channels} covers publishing too. */
  readonly publish?: readonly string[] | undefined;
  /** The connect hook's `meta`, sent back to the subscribe hook. */
  readonly meta?: Json | undefined;
  /** When the identity expires (ms since the epoch): the JWT's `exp`, the connect hook's `expires_at`; undefined: never. */
  readonly expiresAt: number | undefined;
  /** The token's `jti`, when it has one: what `POST /api/tokens/revoke` names (docs/auth.md). */
  readonly tokenId?: string | undefined;
  /** The token's `iat` (unix seconds), when it has one: what `POST /api/users/{user}/revoke` compares. */
  readonly issuedAt?: number | undefined;
  /** Who vouched for it: a JWT (`token`) or the connect hook (`hook`: --refresh-hook renews it); undefined: anonymous. */
  readonly via?: 'token' | 'hook' | undefined;
}

export const ANONYMOUS: Identity = Object.freeze({ user: undefined, channels: undefined, expiresAt: undefined });

/**
 * What the node does with a connection's WebSocket: a `ws` WebSocket, or an SSE session
 * (transport/sse-session.ts) that looks like one, so every part of the node drives both alike.
 */
export interface ClientWire {
  readonly readyState: number;
  close(code?: number, reason?: string): void;
  terminate(): void;
  once(event: 'close', listener: () => void): unknown;
  off(event: 'close', listener: () => void): unknown;
}

/** What the outbox and the heartbeat write pre-framed WebSocket frames to: the TCP socket, or an SSE session's stream. */
export interface ClientSocket {
  write(chunk: Buffer): boolean;
  readonly writableLength: number;
  readonly bytesWritten: number;
  readonly destroyed: boolean;
  once(event: 'drain', listener: () => void): unknown;
}

/** How a connection reaches its client: a WebSocket, or the SSE transport (docs/protocol.md, "SSE transport"). */
export type TransportName = 'websocket' | 'sse';

/** One connection: its identity and its socket (see the top of this file for where its other state lives). */
export class Client {
  /**
   * The outbox's slot (node/outbox.ts, which alone reads and writes it): the frames queued for
   * this socket in this event-loop turn, or null. The one piece of another part's state kept
   * here, because it is on the broadcast path, where a map lookup per socket per message costs
   * more than the rest of the bookkeeping (figures in node/outbox.ts).
   */
  outbox: object | null = null;
  /** The SSE session id, on the SSE transport (announced in `connected`); undefined on a WebSocket. */
  session: string | undefined = undefined;
  /** When the connection opened (ms since the epoch), for `GET /api/users/{user}/connections`. */
  readonly since = Date.now();

  constructor(
    readonly id: string,
    readonly ws: ClientWire,
    /** The TCP socket under `ws` (or the SSE session's stream), written to directly with pre-framed bytes. */
    readonly socket: ClientSocket,
    readonly endpoint: string,
    readonly ip: string,
    readonly origin: string | undefined,
    /**
     * Who the connection is. Replaced (never mutated) when it is refreshed: by a `refresh` frame
     * or --refresh-hook, through the gate's identity lifetime (src/transport/lifetime.ts) alone.
     */
    public identity: Identity,
    readonly transport: TransportName = 'websocket',
  ) {}

  /** True while frames may be written. */
  get open(): boolean {
    return this.ws.readyState === 1 && !this.socket.destroyed;
  }
}

/**
 * A new client id (a UUID). Node assembles randomUUID()'s string by concatenation, a rope of
 * some fifteen strings (about 0.5 KB) that would live as long as the socket; the round trip
 * through latin1 leaves one flat 36-character string.
 */
export function newClientId(): string {
  return Buffer.from(randomUUID(), 'latin1').toString('latin1');
}

/** The TCP socket of a server-side `ws` WebSocket (ws keeps it in `_socket`). */
export function rawSocket(ws: WebSocket): Socket {
  return (ws as unknown as { _socket: Socket })._socket;
}
