/**
 * The soak bench's smoke (`npm run bench -- --soak`), small and short: real nodes on their own
 * Redis behind HAProxy, SDK clients in their own processes, a node drained and restarted twice
 * (about 40 s in all on a loaded machine: two soaks, each with its start, drain and checks).
 * - A soak with every part (steady subscribers, churn with presence, a presence channel, restarts)
 *   passes its three checks, and what it measured adds up: every message to every steady subscriber
 *   after recovery across the restarts, presence entries exactly the members still connected, the
 *   restarted node sampled in more than one life, a report and a plot.
 * - The command with the node killed instead of drained, nodes that keep one message per channel
 *   (`--history-size 1`) and presence entries that outlive a dead node for an hour: the gap a
 *   restart leaves cannot be recovered and the killed node's members stay in presence; it exits 1
 *   with the lines naming both failed checks.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { startRedisServer } from '../../harness/brokers.js';
import { soakChecks } from '../../bench/soak-checks.js';
import { soakMarkdown, soakSvg } from '../../bench/soak-report.js';
import { runSoak } from '../../bench/soak.js';
import { SOAK_DEFAULTS, type SoakShape } from '../../bench/soak-shape.js';

const BENCH = fileURLToPath(new URL('../../bench/run.js', import.meta.url));

test('bench --soak smoke: steady subscribers, churn, presence and two drained restarts pass all three checks', async () => {
  const redis = await startRedisServer();
  try {
    const shape: SoakShape = { ...SOAK_DEFAULTS, duration: 20, steady: 40, rate: 10, churn: 10, presence: 60, restartEvery: 8, report: 8, sample: 2, drain: 30 };
    const r = await runSoak(shape, redis.url);
    const checks = soakChecks(r);
    assert.deepEqual(checks.filter((c) => !c.ok).map((c) => c.line), [], 'every check passes');
    assert.deepEqual(checks.map((c) => c.name), ['heap', 'delivery', 'presence'], 'node1 ran throughout and is the one judged for its heap');
    assert.equal(r.restarts.length, 2);
    const last = r.clients.at(-1)!;
    // 20 s × 10 msg/s on each of 4 channels, every one to its 10 subscribers.
    assert.ok(last.published >= 4 * 190, `published ${last.published}`);
    assert.equal(last.expected, last.published * 10);
    assert.equal(last.delivered, last.expected, 'every message reached every steady subscriber');
    assert.equal(last.missed, 0);
    assert.equal(r.finalMissing, 0);
    assert.ok(last.reconnects >= 1, 'the restarted node\'s clients came back through the other one');
    assert.ok(last.churn.completed >= 120 && last.churn.failed === 0, JSON.stringify(last.churn));
    // At the end only the presence members are connected (the churn has stopped): exactly their entries.
    assert.equal(r.presence.at(-1)!.entries, 60);
    assert.ok(r.presence.length >= 3, `${r.presence.length} presence checks`);
    const lives = new Set(r.memory.filter((m) => m.node === 'node2').map((m) => m.life));
    assert.ok(lives.size >= 2, `node2 sampled in lives ${[...lives]}`);
    assert.ok(r.memory.every((m) => m.rss > m.heap && m.heap > 0 && m.liveHeap > 0), 'RSS, heap and live heap read from every node');
    const md = soakMarkdown({ startedAt: 'now', command: 'smoke', machine: 'here', result: r, checks });
    assert.match(md, /\*\*Passed\.\*\*/);
    assert.match(soakSvg(r), /<polyline points="[^"]+" fill="none" stroke="#d62728"/);
  } finally {
    await redis.stop();
  }
});

test('bench --soak with a node killed, nodes that keep one message per channel and presence for an hour: it fails on delivery and presence and says so', async () => {
  // A SIGKILLed node cannot remove its members' presence entries, and with --presence-ttl 3600 no
  // other node sweeps them within the run; its subscribers' gap is longer than one message.
  const out = mkdtempSync(join(tmpdir(), 'fanout-soak-'));
  try {
    const args = [BENCH, '--soak', '10s', '--steady', '8', '--rate', '20', '--churn', '0', '--presence', '20', '--restart-every', '4', '--restart-signal', 'KILL', '--report', '5', '--sample', '1', '--drain', '3', '--presence-grace', '2', '--serve-args=--history-size 1 --presence-ttl 3600', '--out', out];
    const { code, stderr } = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const child = execFile(process.execPath, args, { timeout: 90_000 }, (_, __, stderr) => resolve({ code: child.exitCode, stderr }));
    });
    assert.equal(code, 1, stderr);
    assert.match(stderr, /^bench: FAIL delivery: steady subscribers missed \d+ messages/m);
    assert.match(stderr, /^bench: FAIL presence: members left behind after their connection closed in \d+ of \d+ checks, \d+ at \d+ s \(e\.g\. soak:presence /m);
    // The heap check may fail too on a loaded machine: a 10 s run sampled every second can be left
    // with too few samples after the first restart to compare. It is not what this test provokes.
    assert.match(stderr, /^bench: soak failed: (heap, )?delivery, presence$/m);
    assert.match(readFileSync(join(out, 'soak.md'), 'utf8'), /\*\*Failed: (heap, )?delivery, presence\.\*\*/);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
