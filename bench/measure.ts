/**
 * One measured point (a system, C clients, R messages/s) and one connection-scale run, with the
 * CPU and memory of the system's processes read from /proc around them.
 */
import { ClientPool, latencies, Publisher, type PoolStats, type PublishVia } from './loadgen.js';
import { cpuSeconds, rssBytes, sumOver } from './proc.js';
import { publishersOf, type RunningSystem, type SystemName } from './systems.js';
import { nowMicros } from './ws-raw.js';
import { sleep } from '../harness/wait.js';

export interface PointOptions {
  readonly clients: number;
  /** Messages per second from the one publisher. */
  readonly rate: number;
  /** Measured seconds of publishing. */
  readonly duration: number;
  /** Seconds of unmeasured publishing first. */
  readonly warmup: number;
  readonly workers: number;
  readonly localAddresses: readonly string[];
  readonly publishVia: PublishVia;
  /** Longest wait, in seconds, for late deliveries after the last message was sent. */
  readonly drain?: number;
}

export interface PointResult {
  readonly system: SystemName;
  readonly publishVia: PublishVia;
  readonly clients: number;
  readonly rate: number;
  /** rate × connected clients. */
  readonly offered: number;
  readonly sent: number;
  readonly expected: number;
  /** Measured messages received by all clients, including after the window (drain). */
  readonly delivered: number;
  /** Benchmark messages (warm-up backlog included) read inside the window, per second of window. */
  readonly deliveriesPerSec: number;
  readonly ratio: number;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
  readonly outOfOrder: number;
  readonly failed: number;
  readonly lostAfterReady: number;
  readonly errors: string[];
  /** CPU seconds from the start of the window until the last delivery (or the drain limit). */
  readonly cpu: { readonly nodes: number; readonly haproxy: number; readonly broker: number | null; readonly loadgen: number };
  /** Server CPU (nodes + HAProxy + broker) per delivery, in microseconds. */
  readonly cpuPerDelivery: number;
  /** The nodes' RSS with every client connected, in bytes. */
  readonly nodeRss: number;
}

function snapshot(system: RunningSystem) {
  const usage = process.cpuUsage();
  return {
    nodes: sumOver(system.nodePids, cpuSeconds),
    haproxy: sumOver(system.haproxyPids, cpuSeconds),
    broker: system.brokerPids.length === 0 ? null : sumOver(system.brokerPids, cpuSeconds),
    loadgen: (usage.user + usage.system) / 1e6,
  };
}

// The waits below are the measurement's own clock (CPU sampled every 500 ms, a settle time for
// memory, a pause before the window), not waits for an event: they stay timed.

/**
 * Waits until the system's processes are idle (under 10% of a core for half a second), so that
 * an overloaded system still working off its backlog does not run into the next point.
 */
export async function waitIdle(system: RunningSystem, limitSeconds = 30): Promise<void> {
  const pids = [...system.nodePids, ...system.haproxyPids];
  const until = Date.now() + limitSeconds * 1000;
  let last = sumOver(pids, cpuSeconds);
  while (Date.now() < until) {
    await sleep(500);
    const now = sumOver(pids, cpuSeconds);
    if (now - last < 0.05) return;
    last = now;
  }
}

/**
 * Waits for the stragglers after the last send: until `expected` messages arrived, nothing moved
 * for `stillSeconds`, or `limitSeconds` passed; resolves with the pool's stats then.
 */
async function stragglers(pool: ClientPool, expected: number, limitSeconds: number, stillSeconds: number): Promise<PoolStats> {
  const until = Date.now() + limitSeconds * 1000;
  let stats = await pool.stats();
  let last = stats.seen;
  let still = 0;
  while (stats.received < expected && Date.now() < until && still < stillSeconds * 4) {
    await sleep(250);
    stats = await pool.stats();
    still = stats.seen === last ? still + 1 : 0;
    last = stats.seen;
  }
  return stats;
}

/** Connects C clients and a publisher, publishes at R/s, and reports what the clients saw. */
export async function runPoint(system: RunningSystem, options: PointOptions): Promise<PointResult> {
  const pool = await ClientPool.open(system.target, {
    clients: options.clients,
    workers: options.workers,
    localAddresses: options.localAddresses,
  });
  let publisher: Publisher | undefined;
  try {
    if (pool.connected.ready === 0) {
      throw new Error(`no client connected: ${[...pool.connected.reasons.entries()].map(([k, v]) => `${v}× ${k}`).join('; ')}`);
    }
    publisher = await Publisher.open(system.target, options.publishVia, options.localAddresses[0]);
    const ready = pool.connected.ready;
    if (options.warmup > 0) await publisher.run(options.rate, options.warmup, false);
    await sleep(200);
    const rssConnected = sumOver(system.nodePids, rssBytes);
    const before = snapshot(system);
    const start = nowMicros();
    pool.setWindow(start, start + options.duration * 1e6);
    const sent = await publisher.run(options.rate, options.duration, true);
    const expected = sent * ready;
    const stats = await stragglers(pool, expected, options.drain ?? 10, 1);
    const after = snapshot(system);
    const cpu = {
      nodes: after.nodes - before.nodes,
      haproxy: after.haproxy - before.haproxy,
      broker: after.broker === null || before.broker === null ? null : after.broker - before.broker,
      loadgen: after.loadgen - before.loadgen,
    };
    const serverCpu = cpu.nodes + cpu.haproxy + (cpu.broker ?? 0);
    const lat = latencies(stats);
    return {
      system: system.name,
      publishVia: options.publishVia,
      clients: ready,
      rate: options.rate,
      offered: options.rate * ready,
      sent,
      expected,
      delivered: stats.received,
      deliveriesPerSec: stats.inWindow / options.duration,
      ratio: expected === 0 ? 0 : stats.received / expected,
      p50: lat.p50,
      p99: lat.p99,
      max: lat.max,
      outOfOrder: stats.outOfOrder,
      failed: stats.failed,
      lostAfterReady: stats.lostAfterReady,
      errors: [...stats.reasons.entries()].map(([k, v]) => `${v}× ${k}`),
      cpu,
      cpuPerDelivery: stats.received === 0 ? NaN : (serverCpu / stats.received) * 1e6,
      nodeRss: rssConnected,
    };
  } finally {
    publisher?.close();
    await pool.close();
    await waitIdle(system);
  }
}

export interface ScaleOptions {
  readonly clients: number;
  /** Client processes, each holding its share of the sockets under its own file limit. */
  readonly processes: number;
  readonly localAddresses: readonly string[];
  /** Seconds between broadcasts. */
  readonly interval: number;
  /** Measured seconds of broadcasting. */
  readonly duration: number;
  /** Seconds the idle connections are held before memory is read. */
  readonly settle?: number;
}

export interface ScaleResult {
  readonly system: SystemName;
  readonly nodes: number;
  readonly frontends: number;
  readonly clientProcesses: number;
  readonly requested: number;
  readonly connected: number;
  readonly failed: number;
  readonly errors: string[];
  /** Growth of the nodes' RSS per idle connection (each read after a full GC), in bytes. */
  readonly nodeRssPerConn: number;
  /**
   * Growth of the nodes' live V8 heap per idle connection (after a full GC), in bytes: steadier
   * than RSS, which also moves with how much heap V8 keeps committed after collecting.
   */
  readonly nodeHeapPerConn: number;
  /** Growth of the HAProxy processes' RSS per connection while idle, in bytes. */
  readonly haproxyRssPerConn: number;
  /** The nodes' total RSS with every connection open, in bytes. */
  readonly nodeRss: number;
  /** Seconds between broadcasts and measured seconds. */
  readonly interval: number;
  readonly duration: number;
  readonly sent: number;
  readonly expected: number;
  readonly delivered: number;
  readonly ratio: number;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
  readonly outOfOrder: number;
  readonly lostAfterReady: number;
  /** CPU seconds from the first broadcast until the last delivery (heartbeats and timers included). */
  readonly cpu: { readonly nodes: number; readonly haproxy: number; readonly broker: number | null };
  /** Server CPU (nodes + HAProxy + broker) per delivery, in microseconds. */
  readonly cpuPerDelivery: number;
}

/**
 * The connection-scale run: opens `clients` connections from several client processes through
 * every frontend of `system`, reads the memory they cost while idle, then broadcasts one message
 * every `interval` seconds for `duration` seconds (with each system's heartbeats running) and
 * reports deliveries, latency and server CPU per delivery.
 */
export async function runScale(system: RunningSystem, options: ScaleOptions): Promise<ScaleResult> {
  // Memory is read after a full garbage collection in every node (before any client, and with
  // all of them idle): RSS right after a burst of handshakes holds their garbage, and a fresh
  // process's start-up garbage, collected later, would be subtracted from its sockets' cost.
  const heapBefore = (await system.collectGarbage()).heapUsed;
  const nodesBefore = sumOver(system.nodePids, rssBytes);
  const haproxyBefore = sumOver(system.haproxyPids, rssBytes);
  const pool = await ClientPool.open(system.target, {
    clients: options.clients,
    workers: options.processes,
    processes: true,
    ports: system.frontendPorts,
    localAddresses: options.localAddresses,
  });
  let publisher: Publisher | undefined;
  try {
    const ready = pool.connected.ready;
    if (ready === 0) throw new Error(`no client connected: ${[...pool.connected.reasons.entries()].map(([k, v]) => `${v}× ${k}`).join('; ')}`);
    await sleep((options.settle ?? 3) * 1000);
    const heapAfter = (await system.collectGarbage()).heapUsed;
    const nodesAfter = sumOver(system.nodePids, rssBytes);
    const haproxyAfter = sumOver(system.haproxyPids, rssBytes);
    publisher = await Publisher.open(system.target, publishersOf(system.name)[0]!, options.localAddresses[0]);
    const before = snapshot(system);
    const start = nowMicros();
    pool.setWindow(start, start + options.duration * 1e6);
    const sent = await publisher.run(1 / options.interval, options.duration, true);
    const expected = sent * ready;
    // A broadcast to tens of thousands of sockets can pause longer between reads than a point's.
    const stats = await stragglers(pool, expected, 15, 2);
    const after = snapshot(system);
    const cpu = {
      nodes: after.nodes - before.nodes,
      haproxy: after.haproxy - before.haproxy,
      broker: after.broker === null || before.broker === null ? null : after.broker - before.broker,
    };
    const lat = latencies(stats);
    return {
      system: system.name,
      nodes: system.nodePids.length,
      frontends: system.frontendPorts.length,
      clientProcesses: options.processes,
      requested: options.clients,
      connected: ready,
      failed: pool.connected.failed,
      errors: [...stats.reasons.entries()].map(([k, v]) => `${v}× ${k}`),
      nodeRssPerConn: (nodesAfter - nodesBefore) / ready,
      nodeHeapPerConn: (heapAfter - heapBefore) / ready,
      haproxyRssPerConn: (haproxyAfter - haproxyBefore) / ready,
      nodeRss: nodesAfter,
      interval: options.interval,
      duration: options.duration,
      sent,
      expected,
      delivered: stats.received,
      ratio: expected === 0 ? 0 : stats.received / expected,
      p50: lat.p50,
      p99: lat.p99,
      max: lat.max,
      outOfOrder: stats.outOfOrder,
      lostAfterReady: stats.lostAfterReady,
      cpu,
      cpuPerDelivery: stats.received === 0 ? NaN : ((cpu.nodes + cpu.haproxy + (cpu.broker ?? 0)) / stats.received) * 1e6,
    };
  } finally {
    publisher?.close();
    await pool.close();
    await waitIdle(system);
  }
}
