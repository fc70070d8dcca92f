/**
 * The families that measure channel history, as this node sees it: how many channels have
 * history, how many messages they keep, and how many whole histories were evicted. The channel
 * service reports after each publish (channels/service.ts); the stores report a channel they
 * dropped or evicted through the composition root.
 *
 * Cost contract: a publish moves one map entry; the totals are computed as they change and handed
 * to prom-client at scrape time (the gauges' `collect` hooks). Never one series per channel:
 * only totals are exported, so the number of series does not grow with the number of channels,
 * and at most {@link MAX_HISTORY_CHANNELS} channels are tracked.
 */
import { Counter, Gauge, type Registry } from 'prom-client';

/** Most channels the history gauges track; past it the least recently reported leaves them (with --history-ttl 0 too). */
export const MAX_HISTORY_CHANNELS = 65_536;

export interface HistoryMetricsOptions {
  /** How long a channel's history lives after its last message (--history-ttl), in ms; 0 for ever. Entries not refreshed for that long leave the totals. */
  readonly historyTtlMs?: number;
}

export class HistoryMetrics {
  private readonly evictions: Counter;
  /** Channel → [messages, when last reported], least recently reported first. */
  private readonly history = new Map<string, [number, number]>();
  private total = 0;
  private readonly ttlMs: number;

  constructor(registry: Registry, options: HistoryMetricsOptions = {}) {
    this.ttlMs = options.historyTtlMs ?? 0;
    const registers = [registry];
    // Read at scrape time, after the entries past --history-ttl left.
    const current = (which: 'channels' | 'messages'): number => {
      this.trim(Date.now());
      return which === 'channels' ? this.history.size : this.total;
    };
    new Gauge({
      name: 'fanout_history_channels',
      help: 'Channels with history, as this node last saw them.',
      registers,
      collect() {
        this.set(current('channels'));
      },
    });
    new Gauge({
      name: 'fanout_history_messages',
      help: 'Messages kept in channel history, summed over channels, as this node last saw them.',
      registers,
      collect() {
        this.set(current('messages'));
      },
    });
    this.evictions = new Counter({ name: 'fanout_history_evictions_total', help: 'Channels whose whole history the memory store or the Kafka index evicted to stay within --history-max-bytes.', registers });
  }

  /**
   * The history of `channel` now holds `n` messages (0 when it expired or was dropped). A channel
   * not reported again within --history-ttl is taken as expired.
   */
  channelSize(channel: string, n: number): void {
    const before = this.history.get(channel)?.[0] ?? 0;
    // Moved to the end: the map stays ordered by report time, so what leaves leaves from the front.
    this.history.delete(channel);
    const now = Date.now();
    if (n > 0) this.history.set(channel, [n, now]);
    this.total += Math.max(0, n) - before;
    this.trim(now);
  }

  /** A store dropped the history of `channel`: it expired, or (`evicted`) the store evicted it whole for --history-max-bytes. */
  dropped(channel: string, evicted: boolean): void {
    this.channelSize(channel, 0);
    if (evicted) this.evictions.inc();
  }

  /** Drops, from the front, entries past their TTL and past {@link MAX_HISTORY_CHANNELS}: only what leaves is visited. */
  private trim(now: number): void {
    const expired = this.ttlMs > 0 ? now - this.ttlMs : -Infinity;
    for (const [channel, [n, at]] of this.history) {
      if (at >= expired && this.history.size <= MAX_HISTORY_CHANNELS) return;
      this.history.delete(channel);
      this.total -= n;
    }
  }
}
