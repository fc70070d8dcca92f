/**
 * One WebSocket connection as the node sees it: who it is, which endpoint it is on, and the
 * frames waiting for the next flush. Kept small: no per-socket timers or closures.
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
  /** When the token expires (ms since the epoch), if it does. */
  readonly expiresAt: number | undefined;
}

export const ANONYMOUS: Identity = Object.freeze({ user: undefined, channels: undefined, expiresAt: undefined });

export class Client {
  /** Frames queued in this event-loop turn; written as one buffer at the flush. */
  queue: Buffer[] | null = null;
  queuedBytes = 0;
  /** Of {@link queuedBytes}, the bytes of replies the client asked for (history, recovery). */
  queuedReplyBytes = 0;
  /**
   * Frames waiting for the socket to drain while a large reply streams out (node/outbox.ts), in
   * order; null when nothing is held. Split into the bytes of replies and of everything else.
   */
  held: Buffer[] | null = null;
  heldLiveBytes = 0;
  heldReplyBytes = 0;
  /** A 'drain' listener is waiting to stream more of `held`. */
  drainListening = false;
  /** Bytes the client's requests in flight may still produce (reserved by the endpoint). */
  requestBytes = 0;
  /** Heartbeat state (node/heartbeat.ts): set by a pong or any message, cleared at each heartbeat visit. */
  alive = true;
  /** Pinged at the last heartbeat visit, nothing heard since. */
  pinged = false;
  /** The socket's slot in the node's heartbeat wheel. */
  slot = 0;
  /** Endpoint-specific state (the channel endpoint keeps its subscriptions here). */
  state: unknown = undefined;
  /** --rate-limit token bucket (transport/limits.ts), refilled lazily when a message arrives. */
  rateTokens = 0;
  rateRefilledAt = 0;
  /** Messages dropped since `rateWindowStart`, for "persistent abuse". */
  rateDropped = 0;
  rateWindowStart = 0;
  /** --rate-limit-bytes token bucket (transport/limits.ts), and the bytes dropped since `byteWindowStart`. */
  byteTokens = 0;
  byteRefilledAt = 0;
  byteDropped = 0;
  byteWindowStart = 0;

  constructor(
    readonly id: string,
    readonly ws: WebSocket,
    /** The TCP socket under `ws`, written to directly with pre-framed bytes. */
    readonly socket: Socket,
    readonly endpoint: string,
    readonly ip: string,
    readonly origin: string | undefined,
    readonly identity: Identity,
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
