/**
 * The client's requests in flight: each has an id the reply echoes, a timeout, and a rule for a
 * dropped connection. Contract (docs/client.md): a request made while disconnected waits (up to
 * `maxQueued`) and is sent after the reconnect; a publish already on the wire when the connection
 * drops rejects with `disconnected` (its outcome is unknown, so it is never resent and cannot be
 * duplicated), unless it carries an `idempotency_key`: then it is resent with the same key, and
 * the server stores it once; history and presence reads are resent; subscribes are re-sent by
 * their subscriptions, with `since`.
 */
import type { ClientFrame, ServerFrame } from '../src/protocol/frames.js';
import { FanoutClientError } from './errors.js';
import type { Subscription } from './subscription.js';

export type RequestKind = 'publish' | 'history' | 'presence' | 'subscribe' | 'unsubscribe' | 'refresh';

export interface Pending {
  readonly id: number;
  readonly kind: RequestKind;
  readonly frame: ClientFrame;
  readonly resolve: (frame: ServerFrame) => void;
  readonly reject: (err: FanoutClientError) => void;
  readonly timer: ReturnType<typeof setTimeout> | undefined;
  readonly subscription?: Subscription<unknown>;
  sent: boolean;
}

export interface RequestTableOptions {
  /** ms a request may wait for its reply, queued time included; 0 is no limit. */
  readonly requestTimeout: number;
  /** Requests that may wait for a connection. */
  readonly maxQueued: number;
  /** Puts a frame's text on the socket; false when there is no open socket. */
  readonly send: (text: string) => boolean;
}

/** A callback that does nothing. */
export const noop = (): void => {};

export class RequestTable {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();

  constructor(private readonly options: RequestTableOptions) {}

  get(id: number | undefined): Pending | undefined {
    return id === undefined ? undefined : this.pending.get(id);
  }

  /** Forgets a request without settling it (a subscription the app ended). */
  forget(id: number): void {
    this.pending.delete(id);
  }

  /**
   * A request whose promise settles with its reply. `connected` says whether to send it now;
   * otherwise it waits for {@link sendWaiting}, unless `queue` is false or the queue is full.
   */
  add(kind: RequestKind, body: ClientFrame, { connected, queue }: { connected: boolean; queue: boolean }): Promise<ServerFrame> {
    return new Promise<ServerFrame>((resolve, reject) => {
      const channel = channelOf(body);
      if (!connected) {
        if (!queue) return reject(new FanoutClientError('disconnected', `cannot ${kind} while disconnected`, { channel }));
        let queued = 0;
        for (const p of this.pending.values()) if (!p.sent) queued++;
        if (queued >= this.options.maxQueued) return reject(new FanoutClientError('queue_full', `${queued} requests already wait for a connection (maxQueued)`, { channel }));
      }
      const id = this.nextId++;
      const frame = { ...body, id } as ClientFrame;
      const { requestTimeout } = this.options;
      const expiry = timer(requestTimeout, () => {
        const pending = this.pending.get(id);
        if (!pending) return;
        const text = pending.sent
          ? `no reply to the ${kind} within ${requestTimeout} ms${kind === 'publish' ? '; it may or may not have been published' : ''}`
          : `the ${kind} waited ${requestTimeout} ms for a connection and was not sent`;
        this.settle(pending, new FanoutClientError('timeout', text, { channel, sent: pending.sent }));
      });
      const pending: Pending = { id, kind, frame, resolve, reject, timer: expiry, sent: false };
      this.pending.set(id, pending);
      if (connected) this.trySend(pending);
    });
  }

  /** A subscribe for `sub`, with deltas when `delta` (no timeout: a subscription waits as long as it takes; a drop re-sends it). Returns its id. */
  subscribe(sub: Subscription<unknown>, since: Extract<ClientFrame, { type: 'subscribe' }>['since'], token?: string, delta = false): number {
    const id = this.nextId++;
    const frame: ClientFrame = { type: 'subscribe', channel: sub.channel, id, ...(since ? { since } : {}), ...(token === undefined ? {} : { token }), ...(delta ? { delta } : {}) };
    const pending: Pending = { id, kind: 'subscribe', frame, resolve: noop, reject: noop, timer: undefined, subscription: sub, sent: false };
    this.pending.set(id, pending);
    this.trySend(pending);
    return id;
  }

  /** After a (re)connect: sends every request that waited, subscribes aside (their subscriptions re-send them). */
  sendWaiting(): void {
    for (const pending of [...this.pending.values()]) if (!pending.sent && pending.kind !== 'subscribe') this.trySend(pending);
  }

  /** The connection dropped: reads wait to be resent, writes already sent reject (their outcome is unknown). */
  dropped(): void {
    for (const pending of [...this.pending.values()]) {
      if (pending.kind === 'subscribe') {
        this.settle(pending); // the resubscription sends a fresh one
      } else if (!pending.sent) {
        continue;
      } else if (pending.kind === 'history' || pending.kind === 'presence' || isKeyedPublish(pending.frame)) {
        pending.sent = false; // reads, and publishes the server stores once per key, are safe to resend
      } else {
        this.settle(pending, new FanoutClientError('disconnected', `connection lost before the ${pending.kind} was acknowledged${pending.kind === 'publish' ? '; it may or may not have been published' : ''}`, { sent: true }));
      }
    }
  }

  /** The client stopped: every request rejects with `closed`. */
  closeAll(message: string): void {
    for (const pending of [...this.pending.values()]) {
      if (pending.kind === 'subscribe') this.settle(pending);
      else this.settle(pending, new FanoutClientError('closed', message, { sent: pending.sent }));
    }
  }

  /** Resolves (with `frame`) or rejects (with `err`) a request, once. */
  settle(pending: Pending, err?: FanoutClientError, frame?: ServerFrame): void {
    if (this.pending.get(pending.id) !== pending) return;
    this.pending.delete(pending.id);
    clearTimeout(pending.timer);
    if (err) pending.reject(err);
    else if (frame) pending.resolve(frame);
  }

  private trySend(pending: Pending): void {
    let text: string;
    try {
      text = JSON.stringify(pending.frame);
    } catch (err) {
      this.settle(pending, new FanoutClientError('bad_request', `cannot encode the ${pending.kind}: ${(err as Error).message}`, { channel: channelOf(pending.frame), cause: err }));
      return;
    }
    try {
      if (this.options.send(text)) pending.sent = true;
    } catch {
      // The socket is closing; its close event resends or rejects this request.
    }
  }
}

/** setTimeout, except that 0 and Infinity (and anything past setTimeout's 2^31 ms range) mean "never". */
export function timer(ms: number, fn: () => void): ReturnType<typeof setTimeout> | undefined {
  return ms > 0 && ms < 2 ** 31 ? setTimeout(fn, ms) : undefined;
}

/** The channel a frame concerns, if it names one. */
export function channelOf(frame: ClientFrame | undefined): string | undefined {
  return frame && 'channel' in frame ? frame.channel : undefined;
}

/** A publish with an idempotency key: the server stores it once however often it is sent. */
function isKeyedPublish(frame: ClientFrame): boolean {
  return frame.type === 'publish' && frame.idempotency_key !== undefined;
}
