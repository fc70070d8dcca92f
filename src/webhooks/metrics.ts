/**
 * The families that measure the --webhook sender (webhooks/webhooks.ts, docs/hooks.md#webhooks):
 * how each event's attempts ended, and the queue's depth.
 *
 * Cost contract: events are counted per batch attempt, with a count (not once per event); the
 * depth is read at scrape time; label values come from fixed sets ({@link WebhookEventName},
 * {@link WebhookResult}).
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { WebhookEventName, WebhookResult } from './webhooks.js';

export class WebhookMetrics {
  private readonly events: Counter<'name' | 'result'>;
  private depth: () => number = () => 0;

  constructor(registry: Registry) {
    this.events = new Counter({
      name: 'fanout_webhook_events_total',
      help: 'Webhook events (docs/hooks.md#webhooks), by name and result: delivered (2xx), retried (in a failed batch sent again), dropped (past --webhook-retry, or left when the node stopped), rejected (another status), overflow (the queue was full).',
      labelNames: ['name', 'result'],
      registers: [registry],
    });
    const depth = (): number => this.depth();
    new Gauge({
      name: 'fanout_webhook_queue_depth',
      help: 'Webhook events waiting for the back end (the batch being sent included); the queue holds at most 10000.',
      registers: [registry],
      collect() {
        this.set(depth());
      },
    });
  }

  /** `count` webhook events named `name` ended an attempt with `result` (the shape of a WebhookObserver). */
  attempted(name: WebhookEventName, result: WebhookResult, count: number): void {
    this.events.labels(name, result).inc(count);
  }

  /** Where `fanout_webhook_queue_depth` reads the queue's depth at scrape time; 0 while no sender is set. */
  queue(depth: () => number): void {
    this.depth = depth;
  }
}
