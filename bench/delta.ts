/**
 * `npm run bench:delta -- [--clients 2000] [--rate 100] [--duration 5] [--warmup 1]`: delta
 * compression (namespace `delta: fossil`) measured on its own, beside the main sweep (bench/run.ts).
 *
 * Two Fanout nodes on a Redis the bench starts, behind HAProxy, with a config file whose namespace
 * `bench` has `delta: fossil`. The publisher sends ~2 KB JSON documents where one field changes per
 * message (it holds the load generator's stamp), through POST /api/publish. The same channel is
 * measured twice, interleaved: clients subscribed plainly (whole messages), then with
 * `"delta":true`. Reported: the bytes the nodes wrote (`wchar` of /proc/PID/io: sockets to
 * HAProxy, plus the bus, which is the same in both runs) per delivery, and the server CPU (nodes,
 * HAProxy, Redis) per delivery, as runPoint measures it.
 *
 * The changing field is the stamp between two letters that change with every message, so a
 * delta's inserted text always holds the whole stamp and the load generator, which looks for the
 * stamp in the bytes it reads, counts and times delta frames as it does whole ones.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { runPoint, type PointResult } from './measure.js';
import { sumOver } from './proc.js';
import { sourceAddresses } from './run.js';
import { BENCH_CHANNEL, startRedis, startSystem, type RunningSystem } from './systems.js';

/** Bytes a process has written (every write syscall: its sockets, the bus, its logs). */
function writtenBytes(pid: number): number {
  try {
    return Number(/wchar: (\d+)/.exec(readFileSync(`/proc/${pid}/io`, 'latin1'))?.[1] ?? 0);
  } catch {
    return 0;
  }
}

/** A ~2 KB JSON document holding `stamp` in its one changing field. */
export function benchDocument(stamp: string, n: number): Record<string, unknown> {
  const guard = String.fromCharCode(97 + (n % 26));
  const rows: Record<string, unknown> = {};
  for (let i = 0; i < 24; i++) rows[`row${i}`] = { name: `instrument ${i}`, bid: 100 + i, ask: 101 + i, venue: 'XPAR', currency: 'EUR' };
  return { id: 'book-1', field: `${guard}${stamp}${guard}`, rows };
}

export interface DeltaRow {
  readonly mode: 'whole' | 'delta';
  readonly point: PointResult;
  /** Bytes the nodes wrote per delivery. */
  readonly bytesPerDelivery: number;
}

async function measure(system: RunningSystem, delta: boolean, load: { clients: number; rate: number; duration: number; warmup: number; round: number }): Promise<DeltaRow> {
  let n = 0;
  const target = { ...system.target, channel: BENCH_CHANNEL, delta, payload: (stamp: string) => benchDocument(stamp, n++) };
  const before = sumOver(system.nodePids, writtenBytes);
  const point = await runPoint({ ...system, target }, { clients: load.clients, rate: load.rate, duration: load.duration, warmup: load.warmup, workers: 2, publishVia: 'http', localAddresses: sourceAddresses(load.clients, load.round) });
  const written = sumOver(system.nodePids, writtenBytes) - before;
  // The warm-up's messages were written too: count them as deliveries, as the bytes include them.
  const deliveries = point.delivered + point.clients * Math.round(load.rate * load.warmup);
  return { mode: delta ? 'delta' : 'whole', point, bytesPerDelivery: written / deliveries };
}

/** The markdown rows of a delta run. */
export function deltaTable(rows: readonly DeltaRow[]): string {
  const lines = ['| subscribers | clients × msg/s | delivered | p50 / p99 ms | node bytes written per delivery | server CPU µs per delivery |', '|---|---|---|---|---|---|'];
  for (const r of rows) {
    const p = r.point;
    lines.push(`| ${r.mode === 'delta' ? '`"delta":true`' : 'plain'} | ${p.clients} × ${p.rate} | ${(p.ratio * 100).toFixed(1)} % | ${p.p50.toFixed(0)} / ${p.p99.toFixed(0)} | ${r.bytesPerDelivery.toFixed(0)} | ${p.cpuPerDelivery.toFixed(2)} |`);
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { clients: { type: 'string' }, rate: { type: 'string' }, duration: { type: 'string' }, warmup: { type: 'string' }, rounds: { type: 'string' }, out: { type: 'string' } }, strict: true });
  const load = { clients: Number(values.clients ?? 2000), rate: Number(values.rate ?? 100), duration: Number(values.duration ?? 5), warmup: Number(values.warmup ?? 1), round: 0 };
  const rounds = Number(values.rounds ?? 2);
  const dir = mkdtempSync(join(tmpdir(), 'fanout-bench-delta-'));
  const config = join(dir, 'delta.yaml');
  writeFileSync(config, `namespaces:\n  - pattern: ${BENCH_CHANNEL}\n    delta: fossil\n    history-size: 0\n`);
  const redis = await startRedis();
  const system = await startSystem('channels', { bus: redis.url, redisUrl: redis.url, brokerPids: [redis.pid], nodes: 2, maxconn: 9000, serveArgs: ['--config', config] });
  const rows: DeltaRow[] = [];
  try {
    for (let i = 0; i < rounds; i++) {
      for (const delta of [false, true]) {
        const row = await measure(system, delta, { ...load, round: load.round++ });
        rows.push(row);
        process.stdout.write(`${row.mode}: ${JSON.stringify({ ratio: row.point.ratio, p50: row.point.p50, p99: row.point.p99, bytesPerDelivery: row.bytesPerDelivery, cpuPerDelivery: row.point.cpuPerDelivery, errors: row.point.errors })}\n`);
      }
    }
  } finally {
    await system.stop();
    await redis.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  const table = deltaTable(rows);
  process.stdout.write(`${table}\n`);
  if (values.out) writeFileSync(values.out, `${table}\n`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => {
    process.stderr.write(`bench:delta: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
}
