/** Types and the latency histogram shared by the load generator's main thread and its workers. */
import type { WireProtocol } from './ws-raw.js';

/**
 * What a load-generator client speaks: one of ws-raw.ts's WebSocket protocols, or SSE read by
 * sse-raw.ts: `sse`, a plain EventSource subscription, or `sse-session`, a session subscribed
 * with a POST as the SDK does (their publisher speaks the channel protocol).
 */
export type ClientProtocol = WireProtocol | 'sse' | 'sse-session';

/** Where a child-process lane finds its WorkerData (a worker thread gets it as workerData). */
export const LANE_DATA_ENV = 'FANOUT_LOADGEN_LANE';

/** What one lane (a worker thread or a child process) is asked to open. */
export interface WorkerData {
  readonly host: string;
  /** The frontends' ports: client i connects to ports[i % ports.length]. */
  readonly ports: readonly number[];
  readonly path: string;
  readonly protocol: ClientProtocol;
  readonly channel: string | undefined;
  /** Channel protocol: subscribe with `"delta":true` (bench/delta.ts). */
  readonly delta?: boolean | undefined;
  readonly count: number;
  readonly localAddresses: readonly string[];
  /** Handshakes in flight at once. */
  readonly concurrency: number;
}

export type WorkerRequest = { type: 'window'; start: number; end: number } | { type: 'stats' } | { type: 'close' };

/** A worker's counts since it started. */
export interface WorkerReport {
  readonly ready: number;
  readonly failed: number;
  /** Clients that were ready and then lost their connection before the end. */
  readonly lostAfterReady: number;
  /** Benchmark messages received (sequence ≥ 1), by all of this worker's clients. */
  readonly received: number;
  /** Benchmark messages read at any time, warm-up ones included (progress, while a backlog drains). */
  readonly seen: number;
  /** Benchmark messages (warm-up ones included) read inside the measurement window. */
  readonly inWindow: number;
  /** Messages that came with a sequence number not above the client's last one. */
  readonly outOfOrder: number;
  /** Largest latency seen, in microseconds. */
  readonly maxLatency: number;
  readonly hist: Uint32Array;
  readonly reasons: [string, number][];
}

/** 0.1 ms buckets up to 100 ms, then 1 ms buckets up to 60 s (the last bucket holds the rest). */
export const HISTOGRAM_SIZE = 1000 + 59_900 + 1;

export function latencyBucket(micros: number): number {
  if (micros < 100_000) return micros < 0 ? 0 : Math.floor(micros / 100);
  return Math.min(1000 + Math.floor(micros / 1000) - 100, HISTOGRAM_SIZE - 1);
}

/** The upper edge of a bucket, in microseconds. */
export function bucketMicros(bucket: number): number {
  return bucket < 1000 ? (bucket + 1) * 100 : (bucket - 1000 + 101) * 1000;
}

/** The latency (µs) at quantile `q` of a histogram, or NaN when it is empty. */
export function quantile(hist: Uint32Array, q: number): number {
  let total = 0;
  for (let i = 0; i < hist.length; i++) total += hist[i]!;
  if (total === 0) return NaN;
  const target = Math.ceil(total * q);
  let seen = 0;
  for (let i = 0; i < hist.length; i++) {
    seen += hist[i]!;
    if (seen >= target) return bucketMicros(i);
  }
  return bucketMicros(hist.length - 1);
}
