/**
 * The webhook queue (docs/hooks.md, "Webhooks"): events wait here until the back end took them.
 * Pure bookkeeping, no I/O and no timers, so its rules are tested on their own:
 *
 * - FIFO: events leave in the order they were emitted, in batches of at most `maxBatch`. One
 *   batch is out at a time, and a failed batch is sent again (same events, same ids) before
 *   anything newer, so a channel's later events always wait behind its undelivered earlier ones.
 * - Bounded: at most `capacity` events wait. Past it the OLDEST waiting event (not one in the
 *   batch being sent) is dropped for the new one: the newest events say what is true now.
 * - Retry window: an event older than `retryMs` (since it was emitted) that was sent at least
 *   once is dropped when it would be sent again. Every event is sent at least once, even with a
 *   window of 0 or after waiting behind a backlog.
 */

/** One event as the back end receives it. */
export interface WebhookEvent {
  readonly id: string;
  readonly name: WebhookEventName;
  readonly channel: string;
  readonly user?: string;
  /** When the node emitted it (ms since the epoch). */
  readonly time_ms: number;
  /** Pusher's `client_event`: the event's name, data and sender (pusher-format.ts). */
  readonly event?: string;
  readonly data?: string;
  readonly socket_id?: string;
}

/** Fanout's four events, and Pusher's two more (`--pusher-webhook`, docs/pusher.md). */
export type WebhookEventName = 'channel_occupied' | 'channel_vacated' | 'member_added' | 'member_removed' | 'client_event' | 'cache_miss';

export interface QueueOptions {
  /** Events waiting at most (the batch being sent included). */
  readonly capacity: number;
  /** Events per request at most. */
  readonly maxBatch: number;
  /** --webhook-retry in ms: an event is dropped once this old and not delivered. */
  readonly retryMs: number;
}

export class WebhookQueue {
  private events: WebhookEvent[] = [];
  /** How many of the first events form the batch being sent (0: none out). */
  private outCount = 0;
  /** Events sent at least once. */
  private readonly attempted = new WeakSet<WebhookEvent>();

  constructor(private readonly options: QueueOptions) {}

  get depth(): number {
    return this.events.length;
  }

  /** True while a batch is out. */
  get sending(): boolean {
    return this.outCount > 0;
  }

  /** Adds an event; returns the event dropped to make room, if any. */
  push(event: WebhookEvent): WebhookEvent | undefined {
    let dropped: WebhookEvent | undefined;
    if (this.events.length >= this.options.capacity) {
      if (this.outCount < this.events.length) dropped = this.events.splice(this.outCount, 1)[0];
      else return event; // the whole queue is one batch out (capacity ≤ maxBatch): the new one goes
    }
    this.events.push(event);
    return dropped;
  }

  /**
   * The next batch to send (the first events, oldest first), after dropping those sent before
   * and now past the retry window; `expired` are the dropped ones. An empty batch: nothing to send.
   */
  take(now: number): { batch: readonly WebhookEvent[]; expired: readonly WebhookEvent[] } {
    if (this.outCount > 0) throw new Error('a webhook batch is already out');
    const keep: WebhookEvent[] = [];
    const expired: WebhookEvent[] = [];
    for (const event of this.events) (this.attempted.has(event) && now - event.time_ms > this.options.retryMs ? expired : keep).push(event);
    this.events = keep;
    this.outCount = Math.min(this.options.maxBatch, keep.length);
    const batch = keep.slice(0, this.outCount);
    for (const event of batch) this.attempted.add(event);
    return { batch, expired };
  }

  /** The batch out was taken by the back end: it leaves the queue. */
  delivered(): readonly WebhookEvent[] {
    const done = this.events.splice(0, this.outCount);
    this.outCount = 0;
    return done;
  }

  /** The batch out failed and will be sent again: it stays first in line. */
  failed(): readonly WebhookEvent[] {
    const batch = this.events.slice(0, this.outCount);
    this.outCount = 0;
    return batch;
  }

  /** Empties the queue (the node stops): what was still waiting. */
  clear(): readonly WebhookEvent[] {
    const all = this.events;
    this.events = [];
    this.outCount = 0;
    return all;
  }
}
