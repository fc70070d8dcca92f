/**
 * --webhook (docs/hooks.md, "Webhooks"): the node tells the back end what happened, after the
 * fact, at least once. Events are queued (queue.ts), batched for up to {@link BATCH_MS}, and
 * POSTed as `{"time_ms":…,"events":[…]}`, signed with --webhook-secret like the hooks' calls.
 *
 * Delivery: one request in flight per node. A 2xx delivers the batch. A timeout (--hook-timeout),
 * a network error, a 5xx, 408 or 429 sends the same batch again after a backoff (doubling from
 * {@link RETRY_FIRST_MS} to {@link RETRY_MAX_MS}); events older than --webhook-retry are dropped
 * then. Any other status rejects the batch: sending it again would get the same answer. Every
 * outcome is counted and failures are logged (at most once per {@link TIMINGS.hookErrorLogMs});
 * nothing here throws into the node or waits on the event loop.
 */
import { randomUUID } from 'node:crypto';
import { TIMINGS } from '../config/defaults.js';
import type { Logger } from '../logger.js';
import { HttpCaller } from '../outbound/http-caller.js';
import { pusherBody, pusherSignature } from './pusher-format.js';
import { WebhookQueue, type WebhookEvent, type WebhookEventName } from './queue.js';

export type { WebhookEvent, WebhookEventName } from './queue.js';

/** How long the first event of a batch waits for others. */
export const BATCH_MS = 100;
/** Events per request at most. */
export const MAX_BATCH = 100;
/** Events waiting at most; past it the oldest waiting one is dropped (counted `overflow`). */
export const QUEUE_CAPACITY = 10_000;
/** Backoff between attempts of a failed batch: from this, doubling, up to {@link RETRY_MAX_MS}. */
export const RETRY_FIRST_MS = 250;
export const RETRY_MAX_MS = 10_000;
/** Answers are read this far at most: only the status counts. */
const MAX_ANSWER_BYTES = 4096;
/** On stop, what is queued gets this long to go out. */
const STOP_GRACE_MS = 2000;

/**
 * The `result` label of `fanout_webhook_events_total`: `delivered` (2xx), `retried` (in a batch
 * that failed and will be sent again), `dropped` (past --webhook-retry, or still queued when the
 * node stopped), `rejected` (another status), `overflow` (the queue was full).
 */
export type WebhookResult = 'delivered' | 'retried' | 'dropped' | 'rejected' | 'overflow';

export type WebhookObserver = (name: WebhookEventName, result: WebhookResult, count: number) => void;

export interface WebhookOptions {
  readonly url: string;
  readonly secret: string;
  readonly nodeId: string;
  /** --hook-timeout, seconds: one request's deadline. */
  readonly timeout: number;
  /** --webhook-retry, seconds. */
  readonly retry: number;
  readonly logger: Logger;
  readonly observe: WebhookObserver;
  /** Pusher's format instead of Fanout's (pusher-format.ts): its body, and X-Pusher-Key/X-Pusher-Signature instead of X-Fanout-Signature. */
  readonly pusher?: { readonly key: string } | undefined;
  /** For tests: queue bounds. */
  readonly capacity?: number;
  readonly maxBatch?: number;
}

/** What the channel layer hands over: an event without its id and time. */
export interface WebhookEventInput {
  readonly name: WebhookEventName;
  readonly channel: string;
  readonly user?: string | undefined;
  /** `client_event` (Pusher): the event, its data as JSON text, its sender. */
  readonly event?: string | undefined;
  readonly data?: string | undefined;
  readonly socketId?: string | undefined;
}

export class Webhooks {
  private readonly queue: WebhookQueue;
  private readonly caller: HttpCaller;
  private readonly url: URL;
  private timer: NodeJS.Timeout | undefined;
  private backoff = 0;
  private closed = false;
  private lastLog = 0;
  private suppressed = 0;
  private idle: Array<() => void> = [];

  constructor(private readonly options: WebhookOptions) {
    this.url = new URL(options.url);
    this.queue = new WebhookQueue({ capacity: options.capacity ?? QUEUE_CAPACITY, maxBatch: options.maxBatch ?? MAX_BATCH, retryMs: options.retry * 1000 });
    const sign = options.pusher ? pusherSignature(options.pusher.key, options.secret) : undefined;
    this.caller = new HttpCaller({ nodeId: options.nodeId, timeoutMs: options.timeout * 1000, concurrency: 1, secret: options.secret, maxAnswerBytes: MAX_ANSWER_BYTES, statusOnly: true, sign });
  }

  /** Events waiting (the batch out included): `fanout_webhook_queue_depth`. */
  get depth(): number {
    return this.queue.depth;
  }

  /** Queues an event; it goes out within {@link BATCH_MS} when the back end keeps up. */
  emit(input: WebhookEventInput): void {
    if (this.closed) return;
    const event: WebhookEvent = {
      id: randomUUID(),
      name: input.name,
      channel: input.channel,
      ...(input.user !== undefined ? { user: input.user } : {}),
      ...(input.event !== undefined ? { event: input.event } : {}),
      ...(input.data !== undefined ? { data: input.data } : {}),
      ...(input.socketId !== undefined ? { socket_id: input.socketId } : {}),
      time_ms: Date.now(),
    };
    const dropped = this.queue.push(event);
    if (dropped) {
      this.options.observe(dropped.name, 'overflow', 1);
      this.log({ dropped: dropped.id }, `webhook queue full (${this.options.capacity ?? QUEUE_CAPACITY} events): dropped the oldest`);
    }
    this.schedule(BATCH_MS);
  }

  private schedule(ms: number): void {
    if (this.timer || this.queue.sending || this.queue.depth === 0) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.send();
    }, ms);
    this.timer.unref();
  }

  private async send(): Promise<void> {
    const { batch, expired } = this.queue.take(Date.now());
    this.count(expired, 'dropped');
    if (expired.length > 0) this.log({ events: expired.length }, `webhook events dropped: not delivered within --webhook-retry (${this.options.retry} s)`);
    if (batch.length === 0) return this.settle();
    const body = this.options.pusher ? pusherBody(Date.now(), batch) : JSON.stringify({ time_ms: Date.now(), events: batch });
    const result = await this.caller.post(this.url, body);
    const status = result.ok ? result.status : 0;
    if (status >= 200 && status < 300) {
      this.backoff = 0;
      this.count(this.queue.delivered(), 'delivered');
      // What queued meanwhile has waited already: it goes now.
      this.schedule(0);
      return this.settle();
    }
    const retry = !result.ok || status >= 500 || status === 408 || status === 429;
    const why = result.ok ? `answered ${status}` : result.message;
    if (!retry || this.closed) {
      if (!retry) {
        const events = this.queue.delivered();
        this.count(events, 'rejected');
        this.log({ events: events.length, status }, `webhook batch rejected (${why}); not sent again`);
      } else {
        // Stopping: no more retries; close() counts what is left.
        this.queue.failed();
        this.count(this.queue.clear(), 'dropped');
      }
      this.schedule(0);
      return this.settle();
    }
    this.count(this.queue.failed(), 'retried');
    this.backoff = this.backoff === 0 ? RETRY_FIRST_MS : Math.min(RETRY_MAX_MS, this.backoff * 2);
    this.log({ events: batch.length, retryInMs: this.backoff }, `webhook call failed (${why}); retrying`);
    this.schedule(this.backoff);
    this.settle();
  }

  private settle(): void {
    if (this.queue.sending || this.queue.depth > 0) return;
    const waiting = this.idle;
    this.idle = [];
    for (const resolve of waiting) resolve();
  }

  private count(events: readonly WebhookEvent[], result: WebhookResult): void {
    if (events.length === 0) return;
    const byName = new Map<WebhookEventName, number>();
    for (const e of events) byName.set(e.name, (byName.get(e.name) ?? 0) + 1);
    for (const [name, n] of byName) this.options.observe(name, result, n);
  }

  /** Failures are logged at most once per TIMINGS.hookErrorLogMs: while the back end is down every attempt fails. */
  private log(fields: Record<string, unknown>, message: string): void {
    const now = Date.now();
    if (now - this.lastLog < TIMINGS.hookErrorLogMs) {
      this.suppressed++;
      return;
    }
    this.options.logger.warn({ ...fields, suppressed: this.suppressed, url: `${this.url.protocol}//${this.url.host}${this.url.pathname}` }, message);
    this.lastLog = now;
    this.suppressed = 0;
  }

  /**
   * Stops: what is queued gets up to {@link STOP_GRACE_MS} (one attempt each, no retries) to go
   * out; the rest is dropped and counted. Safe twice.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.queue.depth > 0) {
      if (this.timer && !this.queue.sending) {
        clearTimeout(this.timer);
        this.timer = undefined;
        void this.send();
      }
      await new Promise<void>((resolve) => {
        const grace = setTimeout(resolve, STOP_GRACE_MS);
        this.idle.push(() => {
          clearTimeout(grace);
          resolve();
        });
      });
    }
    clearTimeout(this.timer);
    this.timer = undefined;
    const left = this.queue.clear();
    this.count(left, 'dropped');
    if (left.length > 0) this.options.logger.warn({ events: left.length }, 'webhook events dropped: the node stopped before the back end took them');
    this.caller.close();
  }
}
