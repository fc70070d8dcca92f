/**
 * The families that measure the back-end hook calls (hooks/hooks.ts, docs/hooks.md): how each
 * call ended, and how long the ones that were sent took.
 *
 * Cost contract: one call per hook call (never per message delivered); label values come from
 * fixed sets ({@link HookName}, {@link HookResult}).
 */
import { Counter, Histogram, type Registry } from 'prom-client';
import type { HookName, HookResult } from './hooks.js';

/** Seconds; a back-end hook answers in milliseconds when healthy, and --hook-timeout caps it at 60 s. */
const HOOK_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

export class HookMetrics {
  private readonly requests: Counter<'hook' | 'result'>;
  private readonly latency: Histogram<'hook'>;

  constructor(registry: Registry) {
    this.requests = new Counter({
      name: 'fanout_hook_requests_total',
      help: 'Back-end hook calls (docs/hooks.md), by hook and result: allowed (200), refused (401/403), error (another status or a bad answer), timeout, network_error, overloaded (not sent: the node\'s or the address\'s share of --hook-concurrency), abandoned (the client went away; the request was aborted).',
      labelNames: ['hook', 'result'],
      registers: [registry],
    });
    this.latency = new Histogram({
      name: 'fanout_hook_latency_seconds',
      help: 'Duration of the back-end hook calls that were sent, by hook, from the request to the whole answer (or the failure).',
      labelNames: ['hook'],
      buckets: HOOK_BUCKETS,
      registers: [registry],
    });
  }

  /** A back-end hook call ended with `result`; `seconds` is its duration when it was sent (the shape of hooks.ts's HookObserver). */
  request(hook: HookName, result: HookResult, seconds: number | undefined): void {
    this.requests.labels(hook, result).inc();
    if (seconds !== undefined) this.latency.labels(hook).observe(seconds);
  }
}
