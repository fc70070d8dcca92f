/**
 * The family that measures the upgrade gate (transport/gate.ts, transport/server.ts): upgrades
 * refused before the 101, by reason and HTTP status.
 *
 * Cost contract: a refusal is rare next to messages, but its reason comes from the request (an
 * Origin, a token's error), so the label is sanitised and capped: a client can never grow the
 * number of series.
 */
import { Counter, type Registry } from 'prom-client';

/** At most this many distinct rejection reasons are kept as label values; the rest count as `other`. */
const MAX_REASONS = 32;

export class UpgradeMetrics {
  private readonly rejections: Counter<'reason' | 'status'>;
  private readonly reasons = new Set<string>();

  constructor(registry: Registry) {
    this.rejections = new Counter({
      name: 'fanout_handshake_rejections_total',
      help: 'WebSocket upgrades refused before the 101, by reason and HTTP status.',
      labelNames: ['reason', 'status'],
      registers: [registry],
    });
  }

  /**
   * An upgrade was refused with HTTP `status` before the 101. `reason` should be a short stable
   * word (`origin`, `token_invalid`, `max_connections`, …): it is lower-cased, reduced to
   * `[a-z0-9_]`, cut to 40 characters, and past {@link MAX_REASONS} distinct reasons counted as `other`.
   */
  rejected(reason: string, status: number): void {
    let label = reason
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, '_')
      .replace(/^_|_$/g, '')
      .slice(0, 40) || 'other';
    if (!this.reasons.has(label)) {
      if (this.reasons.size >= MAX_REASONS) label = 'other';
      else this.reasons.add(label);
    }
    this.rejections.labels(label, String(status)).inc();
  }
}
