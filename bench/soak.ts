/**
 * `npm run bench -- --soak DURATION`: a long run that looks for leaks and losses. Fanout nodes on
 * the bench's own Redis (bus, history, presence) behind HAProxy, and, through HAProxy:
 * - steady SDK subscribers over a few channels, every channel published at a fixed rate by a back
 *   end connected to the first node (which is never restarted);
 * - connections churning at a fixed rate (connect, subscribe, history, publish, disconnect);
 * - members of one presence channel for the whole run;
 * - the last node drained (SIGTERM; or killed, `restartSignal`) and started again every `restartEvery` seconds.
 * Every `sample` seconds it reads each node's RSS and heap (/metrics, prom-client's
 * `process_resident_memory_bytes` and `nodejs_heap_size_used_bytes`) and its live heap after a full
 * GC (SIGUSR2, bench/peers/gc-on-signal.cjs), and the clients' latencies and counts; every `report`
 * seconds it checks presence and logs a line. bench/soak-checks.ts judges the result.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { WebSocket } from 'ws';
import { FanoutClient } from '../client/index.js';
import { forkFanoutServe, waitReadyPort, type ServerProcess } from '../harness/fanout-process.js';
import { startHaproxy, type RunningHaproxy } from '../harness/haproxy.js';
import { freePort } from '../harness/ports.js';
import { sleep, untilEvent } from '../harness/wait.js';
import { nowMs } from './faults-client.js';
import { LATENCY_BUCKETS, type SoakClientIds, type SoakClientSample, type SoakClientSpec } from './soak-client.js';
import { soakHistorySize, type ClientSample, type NodeSample, type PresenceCheck, type SoakRestart, type SoakResult, type SoakShape } from './soak-shape.js';

export { SOAK_DEFAULTS } from './soak-shape.js';
export type { SoakResult, SoakShape } from './soak-shape.js';

const CLIENT_MODULE = fileURLToPath(new URL('./soak-client.js', import.meta.url));
const GC_HOOK = fileURLToPath(new URL('../../bench/peers/gc-on-signal.cjs', import.meta.url));

function percentile(histogram: Float64Array, p: number): number {
  const total = histogram.reduce((a, b) => a + b, 0);
  if (total === 0) return 0;
  const want = Math.ceil((p / 100) * total);
  let seen = 0;
  for (let ms = 0; ms < histogram.length; ms++) {
    seen += histogram[ms]!;
    if (seen >= want) return ms + 1;
  }
  return histogram.length;
}

/** A prom-client metric in a /metrics text, its values summed over its labels (NaN when absent). */
export function metricValue(text: string, name: string): number {
  const values = [...text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'gm'))].map((m) => Number(m[1]));
  return values.length === 0 ? NaN : values.reduce((a, b) => a + b, 0);
}

/** The node's heapUsed after a full GC (SIGUSR2, bench/peers/gc-on-signal.cjs). */
async function liveHeap(node: ServerProcess, name: string): Promise<number> {
  const gc = untilEvent<[{ type?: string; heapUsed?: number }]>(node.child, 'message', { filter: (m) => m?.type === 'bench-memory', failOn: ['exit'], timeoutMs: 10_000, what: `${name} to report its memory` });
  node.child.kill('SIGUSR2');
  const [m] = await gc;
  return m.heapUsed ?? NaN;
}

class ClientProcess {
  private readonly child: ChildProcess;
  readonly ready: Promise<void>;
  private readonly exited: Promise<never>;

  constructor(spec: SoakClientSpec) {
    this.child = fork(CLIENT_MODULE, [JSON.stringify(spec)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.exited = new Promise<never>((_, reject) => this.child.once('exit', (code, signal) => reject(new Error(`a soak client process exited (${code ?? signal})`))));
    this.exited.catch(() => {});
    this.ready = this.ask('ready', undefined, 120_000).then(() => {});
  }

  private ask<T>(reply: string, request: object | undefined, timeoutMs = 30_000): Promise<T> {
    const answer = untilEvent<[{ type?: string } & T]>(this.child, 'message', { filter: (m) => m?.type === reply, timeoutMs, what: `the soak clients to answer ${reply}` });
    if (request) this.child.send(request);
    return Promise.race([answer.then(([m]) => m), this.exited]);
  }

  sample(): Promise<SoakClientSample> {
    return this.ask<{ sample: SoakClientSample }>('sample', { type: 'sample' }).then((m) => m.sample);
  }

  ids(since: number): Promise<SoakClientIds> {
    return this.ask<{ ids: SoakClientIds }>('ids', { type: 'ids', since }).then((m) => m.ids);
  }

  stopChurn(): Promise<void> {
    return this.ask('churn-stopped', { type: 'stop-churn' }).then(() => {});
  }

  async close(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    await this.ask('closed', { type: 'close' }, 10_000).catch(() => {});
    this.child.kill('SIGKILL');
  }
}

/** What an interrupted run must stop. */
export const runningSoaks = new Set<{ stop(): Promise<void> }>();

/**
 * Runs one soak on the Redis at `redisUrl` (its keys under a fresh prefix, removed at the end),
 * behind an HAProxy with `maxconn` (keep it within the file limit: two descriptors a connection).
 * Never throws for what it measures; throws when it cannot start.
 */
export async function runSoak(shape: SoakShape, redisUrl: string, log: (line: string) => void = () => {}, maxconn = 9000): Promise<SoakResult> {
  const prefix = `soak-${randomBytes(4).toString('hex')}`;
  const steadyChannels = Array.from({ length: shape.channels }, (_, i) => `soak:steady:${i}`);
  const presenceChannel = 'soak:presence';
  const churnChannels = Array.from({ length: 16 }, (_, i) => `soak:churn:${i}`);
  const ports = await Promise.all(Array.from({ length: shape.nodes }, () => freePort()));
  const lives = ports.map(() => 0);
  const nodes: (ServerProcess | undefined)[] = ports.map(() => undefined);
  const startNode = async (i: number): Promise<ServerProcess> => {
    const node = await forkFanoutServe(
      [
        '--port', String(ports[i]), '--bus', redisUrl, '--bus-prefix', prefix, '--node-id', `${prefix}-n${i + 1}-${lives[i]}`,
        '--presence', 'soak:presence,soak:churn:*', '--rate-limit', '0', '--rate-limit-bytes', '0',
        '--drain-delay', '1', '--drain-timeout', '2', '--log-level', 'error', '--history-size', String(soakHistorySize(shape)), ...shape.serveArgs,
      ],
      { passThrough: true, timeoutMs: 30_000, execArgv: ['--expose-gc', '--require', GC_HOOK] },
    );
    await waitReadyPort(ports[i]!, 30_000);
    return node;
  };
  const redis = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 3 });
  let haproxy: RunningHaproxy | undefined;
  let publisher: FanoutClient | undefined;
  const clients: ClientProcess[] = [];
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    publisher?.close();
    await Promise.all(clients.map((c) => c.close()));
    await haproxy?.stop();
    await Promise.all(nodes.map((n) => n?.stop()));
    // Its keys go with it: the run's prefix only.
    const keys = await redis.keys(`${prefix}*`).catch(() => [] as string[]);
    for (let i = 0; i < keys.length; i += 500) await redis.del(...keys.slice(i, i + 500)).catch(() => 0);
    redis.disconnect();
  };
  const handle = { stop };
  runningSoaks.add(handle);
  try {
    await redis.connect();
    for (let i = 0; i < shape.nodes; i++) nodes[i] = await startNode(i);
    haproxy = await startHaproxy(ports, { maxconn, checkInterval: 500 });
    const origin = `ws://127.0.0.1:${haproxy.port}`;
    // Each node's live heap before any client: what the heap check takes as the part no connection holds.
    const idle = Object.fromEntries(await Promise.all(nodes.map(async (n, i) => [`node${i + 1}`, await liveHeap(n!, `node${i + 1}`)] as const)));
    publisher = new FanoutClient({ url: `ws://127.0.0.1:${ports[0]}/ws/v1`, WebSocket: WebSocket as never });
    const publisherUp = untilEvent(publisher as never, 'connected', { timeoutMs: 10_000, what: 'the soak publisher to connect' });
    publisher.connect();
    await publisherUp;

    const share = (total: number, i: number) => Math.floor(total / shape.clientProcesses) + (i < total % shape.clientProcesses ? 1 : 0);
    for (let i = 0; i < shape.clientProcesses; i++) {
      clients.push(
        new ClientProcess({
          origin,
          steady: share(shape.steady, i),
          channels: steadyChannels,
          presence: share(shape.presence, i),
          presenceChannel,
          churnRate: shape.churn / shape.clientProcesses,
          churnChannels,
          rememberClosedMs: (shape.presenceGrace + shape.report + 60) * 1000,
        }),
      );
    }
    await Promise.all(clients.map((c) => c.ready));
    log(`soak: ${shape.steady} steady subscribers, ${shape.presence} presence members ready on ${shape.nodes} nodes; running ${shape.duration} s`);

    const published = steadyChannels.map(() => 0);
    let publishFailures = 0;
    const start = Date.now();
    const since = () => (Date.now() - start) / 1000;
    let publishing = true;
    const publishLoop = (async () => {
      for (let seq = 0; publishing; seq++) {
        await sleep(Math.max(0, start + (seq * 1000) / shape.rate - Date.now()));
        if (!publishing) break;
        steadyChannels.forEach((channel, c) => {
          void publisher!.publish(channel, { s: seq, t: nowMs() }).catch(() => publishFailures++);
          published[c] = seq + 1;
        });
      }
    })();

    const memory: NodeSample[] = [];
    const clientSamples: ClientSample[] = [];
    const intervals: SoakResult['intervals'][number][] = [];
    const presence: PresenceCheck[] = [];
    const restarts: SoakRestart[] = [];
    const intervalHistogram = new Float64Array(LATENCY_BUCKETS + 1);

    const sampleNodes = async () => {
      const at = since();
      await Promise.all(
        nodes.map(async (node, i) => {
          if (!node) return;
          try {
            const res = await fetch(`http://127.0.0.1:${ports[i]}/metrics`);
            const text = await res.text();
            const heap = await liveHeap(node, `node${i + 1}`);
            memory.push({ at, node: `node${i + 1}`, life: lives[i]!, rss: metricValue(text, 'fanout_process_resident_memory_bytes'), heap: metricValue(text, 'fanout_nodejs_heap_size_used_bytes'), connections: metricValue(text, 'fanout_connections'), liveHeap: heap });
          } catch {
            // A node in its drain or restart: no sample this time.
          }
        }),
      );
    };
    const sampleClients = async (): Promise<SoakClientSample[]> => {
      const samples = await Promise.all(clients.map((c) => c.sample()));
      const histogram = new Float64Array(LATENCY_BUCKETS + 1);
      for (const s of samples) for (const [ms, n] of s.latencies) histogram[ms]! += n;
      for (let i = 0; i < histogram.length; i++) intervalHistogram[i]! += histogram[i]!;
      const add = (f: (s: SoakClientSample) => number) => samples.reduce((n, s) => n + f(s), 0);
      clientSamples.push({
        at: since(),
        published: published.reduce((a, b) => a + b, 0),
        expected: samples.reduce((n, s) => n + s.steady.reduce((m, ch, c) => m + published[c]! * ch.next.length, 0), 0),
        delivered: add((s) => s.steady.reduce((n, c) => n + c.delivered, 0)),
        missed: add((s) => s.steady.reduce((n, c) => n + c.missed, 0)),
        duplicates: add((s) => s.steady.reduce((n, c) => n + c.duplicates, 0)),
        unrecovered: add((s) => s.unrecovered),
        reconnects: add((s) => s.reconnects),
        p50: percentile(histogram, 50),
        p99: percentile(histogram, 99),
        churn: {
          started: add((s) => s.churn.started),
          completed: add((s) => s.churn.completed),
          failed: add((s) => s.churn.failed),
          skipped: add((s) => s.churn.skipped),
          inFlight: add((s) => s.churn.inFlight),
          lastError: samples.map((s) => s.churn.lastError).find(Boolean) ?? '',
        },
      });
      return samples;
    };
    /** Presence entries in the store now that no client has open, nor closed within the grace. */
    const checkPresence = async (): Promise<PresenceCheck> => {
      const t0 = Date.now();
      const entries = await Promise.all([presenceChannel, ...churnChannels].map(async (ch) => ({ ch, ids: await redis.hkeys(`${prefix}:presence:{${ch}}`) })));
      const answers = await Promise.all(clients.map((c) => c.ids(t0 - shape.presenceGrace * 1000)));
      const known = new Set(answers.flatMap((a) => [...a.live, ...a.closedSince]));
      const left = entries.flatMap(({ ch, ids }) => ids.filter((id) => !known.has(id)).map((id) => `${ch} ${id}`));
      const check = { at: since(), entries: entries.reduce((n, e) => n + e.ids.length, 0), leftBehind: left.length, examples: left.slice(0, 5) };
      presence.push(check);
      return check;
    };
    const mb = (b: number) => (b / 1048576).toFixed(1);
    const reportLine = async (final = false) => {
      const check = await checkPresence();
      const c = clientSamples.at(-1)!;
      const p99 = percentile(intervalHistogram, 99);
      intervals.push({ at: c.at, p99, delivered: c.delivered, expected: c.expected, ...(final ? { final } : {}) });
      intervalHistogram.fill(0);
      const latest = new Map(memory.map((m) => [m.node, m]));
      log(
        `soak ${Math.round(c.at)} s${final ? ' (the end, after the drain)' : ''}: ${[...latest.values()].sort((a, b) => a.node.localeCompare(b.node)).map((m) => `${m.node} RSS ${mb(m.rss)} MB heap ${mb(m.heap)} MB (live ${mb(m.liveHeap)}) ${m.connections} conns`).join(', ')}; ` +
          `p99 ${p99} ms; steady ${c.delivered}/${c.expected} delivered (${c.missed} missed, ${c.unrecovered} unrecovered); ` +
          `churn ${c.churn.completed} done, ${c.churn.failed} failed${c.churn.lastError ? ` (${c.churn.lastError})` : ''}, ${c.churn.skipped} skipped; ` +
          `presence ${check.entries} entries, ${check.leftBehind} left behind`,
      );
    };

    // The restart loop: the last node, drained then started again, as a rolling deploy would.
    let restarting: Promise<void> = Promise.resolve();
    const restartNode = async () => {
      const i = shape.nodes - 1;
      const node = nodes[i]!;
      const t = Date.now();
      nodes[i] = undefined;
      await node.stop(shape.restartSignal);
      const drained = Date.now();
      lives[i]!++;
      nodes[i] = await startNode(i);
      restarts.push({ at: (t - start) / 1000, node: `node${i + 1}`, drainMs: drained - t, startMs: Date.now() - drained });
      log(`soak: node${i + 1} ${shape.restartSignal === 'SIGTERM' ? 'drained' : 'killed'} in ${drained - t} ms, ready again ${Date.now() - drained} ms later`);
    };

    let nextSample = shape.sample;
    let nextReport = shape.report;
    let nextRestart = shape.nodes > 1 && shape.restartEvery > 0 ? shape.restartEvery : Infinity;
    await sampleNodes();
    while (since() < shape.duration) {
      const wake = Math.min(nextSample, nextReport, nextRestart, shape.duration);
      await sleep(Math.max(0, start + wake * 1000 - Date.now()));
      const now = since();
      if (now >= nextRestart && nextRestart < shape.duration) {
        nextRestart += shape.restartEvery;
        restarting = restarting.then(restartNode).catch((err: unknown) => log(`soak: restart failed: ${(err as Error).message}`));
      }
      // A report line reads a fresh sample, due or not.
      if (now >= nextSample || now >= nextReport) {
        while (nextSample <= now) nextSample += shape.sample;
        await sampleNodes();
        await sampleClients();
      }
      if (now >= nextReport) {
        nextReport += shape.report;
        await reportLine();
      }
    }
    publishing = false;
    await publishLoop;
    await restarting;
    await Promise.all(clients.map((c) => c.stopChurn()));
    // Churn cycles still running end within their timeout: the last presence check comes after them.
    const churnEnd = Date.now() + 20_000;
    while ((await sampleClients()).some((s) => s.churn.inFlight > 0) && Date.now() < churnEnd) await sleep(500);
    await sampleNodes();
    log(`soak: published ${published.reduce((a, b) => a + b, 0)}; waiting up to ${shape.drain} s for every steady subscriber to have every message`);

    // The drain: until every steady subscriber has every message, or the limit.
    const missing = (samples: SoakClientSample[]) => {
      let lacking = 0;
      let short = 0;
      for (const s of samples) {
        for (const [c, ch] of s.steady.entries()) {
          for (const next of ch.next) {
            if (next < published[c]!) [lacking, short] = [lacking + published[c]! - next, short + 1];
          }
        }
      }
      return { lacking, short };
    };
    const drainEnd = Date.now() + shape.drain * 1000;
    let final = missing(await sampleClients());
    while (final.lacking > 0 && Date.now() < drainEnd) {
      await sleep(1000);
      final = missing(await sampleClients());
    }
    // The last presence check once the churn has ended: give the grace for the last closes.
    const graceEnd = Date.now() + (shape.presenceGrace + 5) * 1000;
    let check = await checkPresence();
    while (check.leftBehind > 0 && Date.now() < graceEnd) {
      await sleep(1000);
      presence.pop();
      check = await checkPresence();
    }
    await reportLine(true);
    return {
      shape,
      idle,
      memory,
      clients: clientSamples,
      intervals,
      presence,
      restarts,
      finalMissing: final.lacking,
      finalShortSubscribers: final.short,
      publishFailures,
      elapsed: since(),
    };
  } finally {
    await stop();
    runningSoaks.delete(handle);
  }
}
