#!/usr/bin/env node
// Runs the compiled test files (dist/test/**/*.test.js), each in a `node --test` process of its
// own, several at a time: most integration tests wait on brokers, nodes and timers far more than
// they compute, so files overlap well even on a 2-core machine.
//
// A file says in a line of its opening comment what it must not share the machine with:
//   test-runner: alone     nothing else runs beside it (it measures memory or CPU, or loads the
//                          machine so that other files' timings would not mean anything);
//   test-runner: <name>    never beside another file naming the same resource (e.g. `rabbitmq`:
//                          it restarts or cuts the machine's shared RabbitMQ, or needs it steady).
// Each file's output is printed whole when it ends (never interleaved), then a summary: the
// counts over all files, the slowest files, and the failed ones.
//
// Files start longest first, by the seconds test/durations.json records for them (a file it does
// not know counts as long), so that no long file starts last and runs on alone at the end.
// `--record` writes this run's seconds there (after a full run on a quiet machine).
//
// Usage: node scripts/run-tests.mjs [--record] [unit|integration|e2e|a path fragment]...
// FANOUT_TEST_CONCURRENCY sets how many files run at once (default 3; 1 runs them one by one).
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

function find(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...find(path));
    else if (name.endsWith('.test.js')) out.push(path);
  }
  return out;
}

/** The resources a file's opening comment claims (`test-runner: a, b`); `alone` claims the machine. */
function claims(file) {
  const head = readFileSync(file, 'utf8').slice(0, 4000);
  const line = /test-runner:\s*([a-z0-9, -]+)/i.exec(head);
  return line ? line[1].split(',').map((x) => x.trim().split(/\s/)[0]).filter(Boolean) : [];
}

const DURATIONS = 'test/durations.json';
const record = process.argv.includes('--record');
const filters = process.argv.slice(2).filter((a) => a !== '--record');
const known = existsSync(DURATIONS) ? JSON.parse(readFileSync(DURATIONS, 'utf8')) : {};
/** A file's key in test/durations.json: its source path (dist/test/x/y.test.js → test/x/y.test.ts). */
const keyOf = (file) => file.replace(/^dist\//, '').replace(/\.js$/, '.ts');
const expected = (file) => known[keyOf(file)] ?? Infinity;
const files = find('dist/test')
  .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
  .sort();
if (files.length === 0) {
  console.error('no test files matched', filters.join(' '));
  process.exit(1);
}
const concurrency = Math.max(1, Number(process.env.FANOUT_TEST_CONCURRENCY ?? 3) || 1);

// Files that run alone go first, while the machine is quiet; the rest fill the slots after them, longest first.
const queue = files
  .map((file) => ({ file, claims: claims(file) }))
  .sort((a, b) => Number(b.claims.includes('alone')) - Number(a.claims.includes('alone')) || expected(b.file) - expected(a.file));
const running = new Set();
const results = [];
const started = Date.now();

function canStart(job) {
  if (running.size === 0) return true;
  if (running.size >= concurrency || job.claims.includes('alone')) return false;
  for (const other of running) {
    if (other.claims.includes('alone')) return false;
    if (job.claims.some((c) => other.claims.includes(c))) return false;
  }
  return true;
}

function run(job) {
  running.add(job);
  const t0 = Date.now();
  const child = spawn(process.execPath, ['--test', '--test-reporter=spec', job.file], { stdio: ['ignore', 'pipe', 'pipe'] });
  const chunks = [];
  child.stdout.on('data', (c) => chunks.push(c));
  child.stderr.on('data', (c) => chunks.push(c));
  child.on('close', (code, signal) => {
    running.delete(job);
    const output = Buffer.concat(chunks).toString();
    const count = (name) => Number(new RegExp(`^ℹ ${name} (\\d+)`, 'm').exec(output)?.[1] ?? 0);
    const seconds = (Date.now() - t0) / 1000;
    const result = { file: job.file, seconds, code: code ?? 1, signal, tests: count('tests'), pass: count('pass'), fail: count('fail'), cancelled: count('cancelled'), skipped: count('skipped'), todo: count('todo') };
    // A failed file's own account of its failures, repeated at the end: a CI log's tail then holds it.
    if (result.code !== 0 || result.fail > 0 || result.cancelled > 0) result.failures = failuresOf(output);
    results.push(result);
    process.stdout.write(`\n── ${job.file} (${seconds.toFixed(1)} s${result.code === 0 ? '' : `, exit ${signal ?? result.code}`})\n${output}`);
    schedule();
  });
}

/**
 * The reporter's "failing tests" block of a file's output (each failed test with its error, without
 * Node's internal stack frames), cut at 80 lines; without one (a crash, a signal), the output's last 40 lines.
 */
function failuresOf(output) {
  const lines = output.split('\n');
  const at = lines.findIndex((l) => l.startsWith('✖ failing tests:'));
  // Node's own stack frames say nothing about the failure.
  const block = (at >= 0 ? lines.slice(at + 1) : lines.slice(-40)).filter((l) => !/^\s+at (.*\()?(node:|new Promise|Array\.map)/.test(l));
  return (block.length > 80 ? [...block.slice(0, 80), `… ${block.length - 80} more lines`] : block).join('\n').trim();
}

function schedule() {
  for (let i = 0; i < queue.length; ) {
    if (canStart(queue[i])) run(queue.splice(i, 1)[0]);
    else i++;
    if (running.size >= concurrency) break;
  }
  if (queue.length === 0 && running.size === 0) finish();
}

function finish() {
  const sum = (k) => results.reduce((n, r) => n + r[k], 0);
  const failed = results.filter((r) => r.code !== 0 || r.fail > 0 || r.cancelled > 0);
  const wall = (Date.now() - started) / 1000;
  console.log(`\n══ ${results.length} files, ${concurrency} at a time, ${wall.toFixed(0)} s wall (${sum('seconds').toFixed(0)} s of file time)`);
  console.log(`ℹ tests ${sum('tests')}\nℹ pass ${sum('pass')}\nℹ fail ${sum('fail')}\nℹ cancelled ${sum('cancelled')}\nℹ skipped ${sum('skipped')}\nℹ todo ${sum('todo')}`);
  console.log('slowest files:');
  for (const r of [...results].sort((a, b) => b.seconds - a.seconds).slice(0, 12)) console.log(`  ${r.seconds.toFixed(1).padStart(6)} s  ${r.file}`);
  if (record) {
    const all = { ...known };
    for (const r of results) all[keyOf(r.file)] = Math.round(r.seconds);
    writeFileSync(DURATIONS, JSON.stringify(Object.fromEntries(Object.entries(all).sort()), null, 2) + '\n');
    console.log(`recorded ${results.length} files' seconds in ${DURATIONS}`);
  }
  if (failed.length) {
    console.log('failed files:');
    for (const r of failed) console.log(`  ${r.file} (fail ${r.fail}, cancelled ${r.cancelled}, exit ${r.signal ?? r.code})`);
    for (const r of failed) console.log(`\n── what ${r.file} said of its failures:\n${r.failures}`);
  }
  process.exit(failed.length ? 1 : 0);
}

schedule();
