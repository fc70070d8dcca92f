/**
 * `npm run bench -- --faults`: delivery under network faults, side by side. The subscribers run in
 * client network namespaces (harness/netns.ts) and reach HAProxy through a delaying TCP proxy on
 * this machine's end of each veth pair; the servers, HAProxy and the publisher (the back end) stay
 * in the root namespace. Each profile runs on every system in turn; bench/faults-report.ts writes
 * the table.
 */
import { fileURLToPath } from 'node:url';
import { ClientNetwork } from '../harness/netns.js';
import { TcpProxy } from '../harness/tcp-proxy.js';
import { sleep } from '../harness/wait.js';
import type { FaultClientReport, FaultClientSpec, FaultSystem } from './faults-client.js';
import { nowMs } from './faults-client.js';
import { FAULT_CHANNEL, startFaultSystem, type FaultSystemHandle } from './faults-systems.js';

export const FAULT_PROFILES = ['loss', 'cuts', 'kill', 'all'] as const;
export type FaultProfile = (typeof FAULT_PROFILES)[number];

export const FAULT_PROFILE_LABELS: Record<FaultProfile, string> = {
  loss: 'packet loss + delay',
  cuts: 'link cuts',
  kill: 'a node SIGKILLed',
  all: 'all three together',
};

/** The shape of every profile; the defaults are the issue's: 60 s at 20 msg/s to 500 subscribers. */
export interface FaultShape {
  readonly clients: number;
  readonly rate: number;
  /** Seconds of publishing. */
  readonly duration: number;
  /** % of packets dropped each way (loss profiles). */
  readonly loss: number;
  /** Mean and spread (±, even) of the proxy's delay per chunk, ms (loss profiles). */
  readonly delay: number;
  readonly jitter: number;
  /** Seconds between the starts of two link cuts (the first at half of it), and each cut's length. */
  readonly cutEvery: number;
  readonly cutFor: number;
  /** Seconds after the SIGKILL (at half of the duration) before the node is started again. */
  readonly restartAfter: number;
  /** Seconds to wait after the last publish for missed messages to be recovered, at most. */
  readonly drain: number;
}

export const FAULT_DEFAULTS: FaultShape = { clients: 500, rate: 20, duration: 60, loss: 2, delay: 50, jitter: 30, cutEvery: 20, cutFor: 5, restartAfter: 2, drain: 60 };

export interface FaultResult {
  readonly system: FaultSystem;
  readonly profile: FaultProfile;
  readonly clients: number;
  /** Messages the publisher sent. */
  readonly published: number;
  /** published × clients. */
  readonly expected: number;
  /** Distinct messages delivered, all subscribers together. */
  readonly delivered: number;
  readonly duplicates: number;
  readonly outOfOrder: number;
  /** Publish-to-arrival ms of the messages that arrived. */
  readonly p50: number;
  readonly p99: number;
  readonly reconnects: number;
  /** Reconnects after which the system said it could not recover (Fanout `unrecovered`, Socket.IO `recovered` false). */
  readonly unrecovered: number;
  /** Publishes the system refused (Fanout's acks). */
  readonly publishFailures: number;
  /** Subscribers that missed at least one message, with what they got and their state at the end. */
  readonly short: readonly { readonly delivered: number; readonly state: string; readonly highest: number }[];
}

const CLIENT_MODULE = fileURLToPath(new URL('./faults-client.js', import.meta.url));

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

interface Worker {
  delivered: number;
  readonly ready: Promise<void>;
  report(): Promise<FaultClientReport>;
  kill(): void;
}

function startWorker(net: ClientNetwork, spec: FaultClientSpec): Worker {
  const child = net.spawn(process.execPath, [CLIENT_MODULE, JSON.stringify(spec)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const failed = new Promise<never>((_, reject) => child.once('exit', (code, signal) => reject(new Error(`the clients in ${net.name} exited (${code ?? signal}) before they reported`))));
  failed.catch(() => {});
  const worker: Worker = {
    delivered: 0,
    ready: Promise.race([new Promise<void>((resolve) => child.on('message', (m: { type?: string }) => m?.type === 'ready' && resolve())), failed]),
    report: () => {
      const report = new Promise<FaultClientReport>((resolve) =>
        child.on('message', (m: { type?: string; report?: FaultClientReport }) => m?.type === 'report' && resolve(m.report!)),
      );
      child.send({ type: 'report' });
      return Promise.race([report, failed]);
    },
    kill: () => child.kill('SIGKILL'),
  };
  child.on('message', (m: { type?: string; delivered?: number }) => {
    if (m?.type === 'progress') worker.delivered = m.delivered ?? 0;
  });
  return worker;
}

/** Runs each event at `start` + its `at` ms; one promise per event. */
function timeline(events: readonly { at: number; run: () => void | Promise<void> }[], start: number): Promise<void>[] {
  return events.map(async (e) => {
    await sleep(Math.max(0, start + e.at - Date.now()));
    await e.run();
  });
}

/**
 * Runs one profile against one started system: the subscribers in `nets` (spread evenly), through
 * one delaying proxy per namespace; everything but the system and the namespaces is made and
 * undone here.
 */
export async function runFaultProfile(system: FaultSystemHandle, profile: FaultProfile, nets: readonly ClientNetwork[], shape: FaultShape, log: (line: string) => void = () => {}): Promise<FaultResult> {
  const lossy = profile === 'loss' || profile === 'all';
  const cuts = profile === 'cuts' || profile === 'all';
  const kill = profile === 'kill' || profile === 'all';
  const proxies: TcpProxy[] = [];
  const workers: Worker[] = [];
  try {
    for (const net of nets) {
      const proxy = await TcpProxy.start(system.port, '127.0.0.1', net.hostAddress);
      if (lossy) proxy.latency(shape.delay, shape.jitter);
      proxies.push(proxy);
    }
    nets.forEach((net, i) => {
      const clients = Math.floor(shape.clients / nets.length) + (i < shape.clients % nets.length ? 1 : 0);
      const origin = `ws://${net.hostAddress}:${proxies[i]!.port}`;
      workers.push(startWorker(net, { system: system.name, origin, clients, channel: FAULT_CHANNEL }));
    });
    await Promise.all(workers.map((w) => w.ready));
    if (lossy) for (const net of nets) net.loss(shape.loss);
    log(`${system.name} / ${profile}: ${shape.clients} subscribers ready, publishing ${shape.rate} msg/s for ${shape.duration} s`);

    const total = Math.round(shape.rate * shape.duration);
    const start = Date.now() + 100;
    const events: { at: number; run: () => void | Promise<void> }[] = [];
    if (cuts) {
      for (let at = (shape.cutEvery / 2) * 1000; at < shape.duration * 1000; at += shape.cutEvery * 1000) {
        events.push({ at, run: () => nets.forEach((n) => n.cut()) });
        events.push({ at: at + shape.cutFor * 1000, run: () => nets.forEach((n) => n.restore()) });
      }
    }
    if (kill) events.push({ at: (shape.duration / 2) * 1000, run: () => system.killNode(shape.restartAfter * 1000) });
    const faults = timeline(events, start);
    for (let seq = 0; seq < total; seq++) {
      await sleep(Math.max(0, start + (seq * 1000) / shape.rate - Date.now()));
      system.publisher.publish({ s: seq, t: nowMs() });
    }
    await Promise.all(faults);
    for (const net of nets) net.restore();

    // Recovery after the last fault: wait until every message is in, or --drain passed. Not "until
    // nothing moved for a while": a subscriber on a dead link recovers only once its client notices
    // the silence (Fanout's SDK: 1.5 × ping + grace, 50 s by default; Socket.IO: pingInterval +
    // pingTimeout, 45 s), long after the others stopped moving.
    const expected = total * shape.clients;
    const sum = () => workers.reduce((n, w) => n + w.delivered, 0);
    const drainEnd = Date.now() + shape.drain * 1000;
    while (Date.now() < drainEnd && sum() < expected) await sleep(250);
    // One more progress tick, so the reports hold what the last second brought.
    await sleep(1000);
    const reports = await Promise.all(workers.map((w) => w.report()));
    const latencies = reports.flatMap((r) => r.latencies).sort((a, b) => a - b);
    const add = (f: (r: FaultClientReport) => number) => reports.reduce((n, r) => n + f(r), 0);
    return {
      system: system.name,
      profile,
      clients: add((r) => r.clients),
      published: total,
      expected,
      delivered: add((r) => r.delivered),
      duplicates: add((r) => r.duplicates),
      outOfOrder: add((r) => r.outOfOrder),
      p50: percentile(latencies, 50),
      p99: percentile(latencies, 99),
      reconnects: add((r) => r.reconnects),
      unrecovered: add((r) => r.unrecovered),
      publishFailures: system.publisher.failures,
      short: reports.flatMap((r) => r.perClient).filter((c) => c.delivered < total),
    };
  } finally {
    for (const w of workers) w.kill();
    for (const net of nets) {
      net.restore();
      net.loss(0);
    }
    await Promise.all(proxies.map((p) => p.close()));
  }
}

/** Systems started by {@link runFaultPoint} and not stopped yet: what an interrupted run must stop. */
export const runningFaultSystems = new Set<FaultSystemHandle>();

/** Starts `name`, runs `profile` on it and stops it. */
export async function runFaultPoint(name: FaultSystem, profile: FaultProfile, redisUrl: string, nets: readonly ClientNetwork[], shape: FaultShape, log?: (line: string) => void): Promise<FaultResult> {
  const system = await startFaultSystem(name, redisUrl);
  runningFaultSystems.add(system);
  try {
    return await runFaultProfile(system, profile, nets, shape, log);
  } finally {
    await system.stop();
    runningFaultSystems.delete(system);
  }
}
