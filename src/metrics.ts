/**
 * A node's Prometheus registry: one {@link MetricsRegistry} per node, owning its own prom-client
 * Registry (never the global default registry, so several in-process nodes in one test do not
 * collide). `GET /metrics` (src/http/metrics.ts) serves {@link MetricsRegistry.render}.
 *
 * The families are not declared here: each folder declares those that measure it, in a metrics
 * module beside it (node/socket-metrics.ts, node/bus-metrics.ts, node/metrics.ts,
 * transport/metrics.ts, channels/metrics.ts, hooks/metrics.ts, webhooks/metrics.ts,
 * ingest/metrics.ts), each with the cost rules of its own path, and the composition root
 * (src/app.ts) registers them all on this registry, handing each part only its own. Only the
 * composition root imports this module (a rule in .dependency-cruiser.cjs). Every family is named
 * `fanout_…`; docs/operations.md lists them with what to alert on.
 */
import { Gauge, Registry, collectDefaultMetrics } from 'prom-client';

export interface MetricsRegistryOptions {
  /** The node id, exported as `fanout_node_info{node}`. */
  readonly node: string;
  /** Also export process metrics (CPU, memory, file descriptors, event-loop lag, GC) as `fanout_process_…`/`fanout_nodejs_…`. Off for in-process test nodes. */
  readonly processMetrics?: boolean;
}

/** The registry the features' families are registered on, and the exposition text of them all. */
export class MetricsRegistry {
  /** This node's registry: pass it to each metrics module's constructor. */
  readonly registry = new Registry();

  constructor(options: MetricsRegistryOptions) {
    if (options.processMetrics) collectDefaultMetrics({ register: this.registry, prefix: 'fanout_' });
    new Gauge({ name: 'fanout_node_info', help: 'Always 1; the node id as a label.', labelNames: ['node'], registers: [this.registry] }).set({ node: options.node }, 1);
  }

  /** The exposition text and its content type, for `GET /metrics`. Live values are read now, by the families' collect hooks. */
  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
