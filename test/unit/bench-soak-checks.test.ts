/**
 * The soak's verdicts (bench/soak-checks.ts) on measured shapes: a live heap that grows more than
 * the limit from 1/6 of the run fails and says by how much, a restarted node is not judged by its
 * first life, a gap or a message still missing after the drain fails delivery, a presence entry
 * left behind fails presence; and the report and plot say the same.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { soakChecks } from '../../bench/soak-checks.js';
import { soakMarkdown, soakSvg } from '../../bench/soak-report.js';
import { parseDuration, parseSoakArgs } from '../../bench/soak-command.js';
import { SOAK_DEFAULTS, type NodeSample, type SoakResult } from '../../bench/soak-shape.js';

const MB = 1048576;

function result(heapAt: (node: string, at: number) => number, over: Partial<SoakResult> = {}): SoakResult {
  const memory: NodeSample[] = [];
  for (let at = 0; at <= 120; at += 10) {
    memory.push({ at, node: 'node1', life: 0, rss: 90 * MB, heap: 30 * MB, connections: 500, liveHeap: heapAt('node1', at) });
    memory.push({ at, node: 'node2', life: Math.floor(at / 40), rss: 90 * MB, heap: 30 * MB, connections: 100, liveHeap: heapAt('node2', at) });
  }
  const client = { at: 120, published: 100, expected: 1000, delivered: 1000, missed: 0, duplicates: 0, unrecovered: 0, reconnects: 5, p50: 3, p99: 9, churn: { started: 10, completed: 10, failed: 0, skipped: 0, inFlight: 0, lastError: '' } };
  return {
    shape: { ...SOAK_DEFAULTS, duration: 120, sample: 10, report: 30 },
    idle: { node1: 10 * MB, node2: 10 * MB },
    memory,
    clients: [client],
    intervals: [{ at: 120, p99: 9, delivered: 1000, expected: 1000, final: true }],
    presence: [{ at: 120, entries: 40, leftBehind: 0, examples: [] }],
    restarts: [{ at: 40, node: 'node2', drainMs: 1000, startMs: 900 }],
    finalMissing: 0,
    finalShortSubscribers: 0,
    publishFailures: 0,
    elapsed: 125,
    ...over,
  };
}

test('a flat heap passes, judged from after the first restart; a restarted node is not judged; the report says Passed', () => {
  const r = result((node, at) => (node === 'node2' ? (10 + at) * MB : 20 * MB));
  const checks = soakChecks(r);
  assert.deepEqual(checks.map((c) => [c.name, c.ok]), [['heap', true], ['delivery', true], ['presence', true]]);
  // 1/6 of 120 s is 20 s, but the restart at 40 s (1.9 s) moved connections: from 40 + 1.9 + one sample.
  // The first window with the end's connections, from the first sample after that.
  assert.match(checks[0]!.line, /^heap of node1 .*20\.0 MB from 60 s with 500 connections, 20\.0 MB at the end with 500 \(\+0\.0 %\); the same load: \+0\.0 % \(limit 10 %\)$/);
  const md = soakMarkdown({ startedAt: 'now', command: 'npm run bench -- --soak 2m', machine: 'here', result: r, checks });
  assert.match(md, /\*\*Passed\.\*\*/);
  assert.match(md, /\| 120 \(end, after the drain\) \|/);
  assert.match(soakSvg(r), /node1 live heap after GC/);
});

test('a heap growing past the limit from 1/6 of the run fails, with its growth', () => {
  // 20 MB until 20 s, then 1 % more every 10 s: +10.x % by the end window.
  const r = result((_, at) => (at <= 20 ? 20 : 20 * (1 + (at - 20) / 1000)) * MB * (at >= 100 ? 1.12 : 1));
  const heap = soakChecks(r).find((c) => c.name === 'heap')!;
  assert.equal(heap.ok, false);
  assert.match(heap.line, /heap of node1 .* more than the 10 % allowed/);
});

test('a heap that grew with the connections a restart moved onto the node passes; one that grew more fails', () => {
  // 10 MB idle + 20 KB per connection; the restart at 40 s moves 500 more connections onto node1 at 80 s.
  const memory = (perConn: (at: number) => number) =>
    result(() => 0).memory.map((m) => {
      if (m.node !== 'node1') return m;
      const connections = m.at < 80 ? 500 : 1000;
      return { ...m, connections, liveHeap: 10 * MB + connections * perConn(m.at) };
    });
  const moved = result(() => 0, { memory: memory(() => 20 * 1024) });
  const heap = soakChecks(moved).find((c) => c.name === 'heap')!;
  assert.equal(heap.ok, true, heap.line);
  assert.match(heap.line, /with 500 connections, .* at the end with 1000 \(\+49\.4 %\); .*: \+0\.0 %/);
  const leaking = result(() => 0, { memory: memory((at) => (at < 80 ? 20 : 26) * 1024) });
  assert.equal(soakChecks(leaking).find((c) => c.name === 'heap')!.ok, false);
});

test('connections that moved onto the node and hold more than the average one: compared with a window of the same load, a flat heap passes and a growing one fails', () => {
  // Two hours in miniature (240 s): 500 connections until 90 s, then the restarted node's 500
  // long-lived ones (40 KB each, twice a churning one's 20 KB) for good.
  const run = (leakPer10s: number) => {
    const memory: NodeSample[] = [];
    for (let at = 0; at <= 240; at += 10) {
      const connections = at < 100 ? 500 : 1000;
      const liveHeap = 10 * MB + 500 * 20 * 1024 + (connections - 500) * 40 * 1024 + Math.max(0, (at - 100) / 10) * leakPer10s;
      memory.push({ at, node: 'node1', life: 0, rss: 90 * MB, heap: 40 * MB, connections, liveHeap });
      memory.push({ at, node: 'node2', life: at < 40 ? 0 : 1, rss: 90 * MB, heap: 30 * MB, connections: 100, liveHeap: 20 * MB });
    }
    const base = result(() => 20 * MB);
    return soakChecks({ ...base, shape: { ...base.shape, duration: 240 }, memory }).find((c) => c.name === 'heap')!;
  };
  const flat = run(0);
  assert.equal(flat.ok, true, flat.line);
  assert.match(flat.line, /from 90 s with 1000 connections, .* at the end with 1000 \(\+0\.0 %\); the same load: \+0\.0 %/);
  // The model from 1/6 of the run (500 connections at 20 KB above idle) would have predicted 29.5 MB and failed the flat heap.
  const leaking = run(0.5 * MB);
  assert.equal(leaking.ok, false, leaking.line);
  assert.match(leaking.line, /the same load: \+1\d\.\d %, more than the 10 % allowed/);
});

test('a gap or a message still missing after the drain fails delivery; a presence entry left behind fails presence', () => {
  const base = result(() => 20 * MB);
  const gap = result(() => 20 * MB, { clients: [{ ...base.clients[0]!, missed: 3 }] });
  assert.match(soakChecks(gap).find((c) => c.name === 'delivery')!.line, /missed 3 messages \(3 skipped, 0 still missing/);
  const short = result(() => 20 * MB, { finalMissing: 7, finalShortSubscribers: 2 });
  assert.equal(soakChecks(short).find((c) => c.name === 'delivery')!.ok, false);
  const left = result(() => 20 * MB, { presence: [{ at: 60, entries: 41, leftBehind: 1, examples: ['soak:presence abc'] }, { at: 120, entries: 40, leftBehind: 0, examples: [] }] });
  const p = soakChecks(left).find((c) => c.name === 'presence')!;
  assert.equal(p.ok, false);
  assert.match(p.line, /left behind .* in 1 of 2 checks, 1 at 60 s \(e\.g\. soak:presence abc\)/);
});

test('durations and scaled defaults', () => {
  assert.equal(parseDuration('--soak', '2h'), 7200);
  assert.equal(parseDuration('--soak', '10m'), 600);
  assert.equal(parseDuration('--soak', '90s'), 90);
  assert.equal(parseDuration('--soak', '45'), 45);
  assert.throws(() => parseDuration('--soak', '2 hours'), /invalid --soak: expected a duration like 90s/);
  const long = parseSoakArgs(['--soak', '2h', '--steady', '10', '--presence', '10', '--churn', '1']).shape;
  assert.deepEqual([long.report, long.sample, long.restartEvery], [300, 30, 600]);
  const short = parseSoakArgs(['--soak', '1m', '--steady', '10', '--presence', '10', '--churn', '1']).shape;
  assert.deepEqual([short.report, short.sample, short.restartEvery], [15, 5, 20]);
  assert.throws(() => parseSoakArgs(['--steady', '10']), /invalid --soak: expected a duration/);
});
