/**
 * No sticky sessions for SSE: a `POST /ws/v1/sse/{S}` may land on any node. The node that holds
 * session S is named in S itself ({@link sessionOwner}); another node forwards the body over the
 * bus to it and answers the POST with the owner's verdict.
 *
 * Topic `<prefix>:sse:<node>`, one per node, for both directions: `{"t":"post","id","s","ip","body","from","seq"}`
 * (`body` null for a DELETE; `seq` the POST's `?seq=`, absent when it had none: node/sse-sequence.ts)
 * to the owner, `{"t":"answer","id","status","error","message"}` back to the caller. A call waits
 * at most {@link RELAY_DEADLINE_MS} (then 503: the owner did not answer; a killed owner's sessions
 * are gone, and their streams with them, so the client reconnects anyway), and at most
 * {@link MAX_RELAYS_IN_FLIGHT} wait at once per node (more are 503 at once).
 */
import { randomBytes } from 'node:crypto';
import type { ApiErrorCode } from '../errors.js';
import type { Logger } from '../logger.js';
import { EnvelopeKind } from '../protocol/envelope.js';
import type { Topics } from './topics.js';

export const RELAY_DEADLINE_MS = 2000;
export const MAX_RELAYS_IN_FLIGHT = 1024;

/** What a POST gets: 204, or an error body. */
export type PostVerdict = { readonly status: 204 } | { readonly status: number; readonly error: ApiErrorCode; readonly message: string };

/** A new session id: the owner node's id (base64url) and 24 random bytes. Unguessable; names its node. */
export function newSessionId(nodeId: string): string {
  return `${Buffer.from(nodeId).toString('base64url')}.${randomBytes(24).toString('base64url')}`;
}

/** The node a session id names, or undefined when it is not one. */
export function sessionOwner(session: string): string | undefined {
  const m = /^([A-Za-z0-9_-]{1,400})\.[A-Za-z0-9_-]{32}$/.exec(session);
  return m ? Buffer.from(m[1]!, 'base64url').toString() : undefined;
}

export interface SseRelayOptions {
  readonly nodeId: string;
  readonly prefix: string;
  readonly topics: Topics;
  readonly logger: Logger;
  /** Runs a POST body for a session of this node (`body` null: a DELETE, which ends it); `seq` is the POST's, if it had one. */
  readonly deliver: (session: string, ip: string, body: Buffer | null, seq: number | undefined) => PostVerdict;
}

interface Waiting {
  readonly done: (verdict: PostVerdict) => void;
}

export class SseRelay {
  private readonly waiting = new Map<string, Waiting>();
  private readonly idPrefix = randomBytes(4).toString('hex');
  private seq = 0;

  constructor(private readonly options: SseRelayOptions) {}

  start(): void {
    this.options.topics.subscribeTopic(this.topicOf(this.options.nodeId), (kind, body) => this.fromBus(kind, body), 'deliver');
  }

  stop(): void {
    for (const waiting of [...this.waiting.values()]) waiting.done(UNAVAILABLE);
  }

  /** Forwards a POST to the session's owner; resolves with its verdict. */
  forward(owner: string, session: string, ip: string, body: Buffer | null, seq?: number): Promise<PostVerdict> {
    if (this.waiting.size >= MAX_RELAYS_IN_FLIGHT) return Promise.resolve(UNAVAILABLE);
    const id = `${this.idPrefix}.${++this.seq}`;
    return new Promise<PostVerdict>((resolve) => {
      const timer = setTimeout(() => waiting.done(UNAVAILABLE), RELAY_DEADLINE_MS);
      const waiting: Waiting = {
        done: (verdict) => {
          clearTimeout(timer);
          if (this.waiting.delete(id)) resolve(verdict);
        },
      };
      this.waiting.set(id, waiting);
      const message = { t: 'post', id, s: session, ip, body: body === null ? null : body.toString('utf8'), from: this.options.nodeId, ...(seq === undefined ? {} : { seq }) };
      this.send(owner, message).catch(() => waiting.done(UNAVAILABLE));
    });
  }

  private topicOf(node: string): string {
    return `${this.options.prefix}:sse:${node}`;
  }

  private send(node: string, message: Record<string, unknown>): Promise<void> {
    return this.options.topics.publish(this.topicOf(node), EnvelopeKind.SSE, Buffer.from(JSON.stringify(message)));
  }

  private fromBus(kind: number, body: Buffer): void {
    if (kind !== EnvelopeKind.SSE) return;
    let message: Record<string, unknown>;
    try {
      message = JSON.parse(body.toString('utf8')) as Record<string, unknown>;
    } catch {
      return;
    }
    if (typeof message !== 'object' || message === null || typeof message.id !== 'string') return;
    if (message.t === 'post' && typeof message.s === 'string' && typeof message.ip === 'string' && (typeof message.body === 'string' || message.body === null) && typeof message.from === 'string') {
      // A node of an older version sends no seq: the POST runs as it comes.
      const seq = typeof message.seq === 'number' && Number.isSafeInteger(message.seq) && message.seq >= 1 ? message.seq : undefined;
      const verdict = this.options.deliver(message.s, message.ip, message.body === null ? null : Buffer.from(message.body), seq);
      this.send(message.from, { t: 'answer', id: message.id, ...verdict }).catch((err: unknown) => this.options.logger.debug({ err }, 'SSE relay answer not sent'));
    } else if (message.t === 'answer' && typeof message.status === 'number') {
      const verdict = message.status === 204 ? ({ status: 204 } as const) : { status: message.status, error: String(message.error) as ApiErrorCode, message: String(message.message) };
      this.waiting.get(message.id)?.done(verdict);
    }
  }
}

const UNAVAILABLE: PostVerdict = { status: 503, error: 'unavailable', message: "the session's node did not answer in time: the frames may or may not have run; send them again with the same ?seq=" };
