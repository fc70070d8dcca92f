/**
 * `npm run bench -- --soak DURATION [options]`: parses the soak run's flags, runs it (bench/soak.ts)
 * on a Redis of its own, writes the report (bench/soak-report.ts) and fails, with one line per
 * failed check, when the heap grew, a steady subscriber missed a message or a presence member was
 * left behind (bench/soak-checks.ts).
 */
import { spawnSync } from 'node:child_process';
import { cpus, loadavg, totalmem } from 'node:os';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ConfigError } from '../src/errors.js';
import { soakChecks } from './soak-checks.js';
import { humanDuration, writeSoakReport } from './soak-report.js';
import { runningSoaks, runSoak, SOAK_DEFAULTS, type SoakShape } from './soak.js';
import { startRedis } from './systems.js';

const d = SOAK_DEFAULTS;

export const SOAK_HELP = `Usage: npm run bench -- --soak DURATION [options]

A long run that looks for leaks and losses (DURATION like 90s, 10m, 2h, or seconds): Fanout nodes on
a Redis the bench starts, behind HAProxy, with steady SDK subscribers, churning connections, a large
presence channel and a node drained and restarted on a schedule. Every --report it logs each node's
RSS and heap (/metrics) and live heap after a full GC, the p99 of the steady subscribers and what
they got of what was published. It exits 1, with a line per failed check, when the live heap of a node
that ran throughout grew more than --heap-limit % from 1/6 of the run (the 20th minute of 2 h; after
the first restart) to the end, at equal load (scaled by its connections), a steady subscriber missed a message, or a presence member stayed after its connection
closed. Writes soak.md, soak.json and soak.svg into --out, and the "Soak" section of --out's
BENCHMARKS.md when there is one (--out . for the committed report). Needs haproxy and redis-server.

  --steady N          steady subscribers (default ${d.steady})
  --channels N        channels they spread over (default ${d.channels})
  --rate N            messages/s on each channel (default ${d.rate})
  --churn N           connections/s churning (default ${d.churn})
  --presence N        members of the presence channel (default ${d.presence})
  --nodes N           Fanout nodes (default ${d.nodes}); the last one is the one restarted
  --restart-every D   between restarts of the last node (default ${humanDuration(d.restartEvery)}, or a third of
                      a shorter run; 0 for none)
  --restart-signal S  TERM (default: a drain, as a rolling restart does) or KILL (a crash)
  --report D          between report lines and presence checks (default ${humanDuration(d.report)}, or a quarter of a
                      run shorter than 20 min)
  --sample D          between memory and latency samples (default ${d.sample} s, or a third of --report)
  --presence-grace S  seconds a closed connection's presence entry may stay (default ${d.presenceGrace})
  --drain S           seconds to wait after the run for every message to arrive, at most (default ${d.drain})
  --heap-limit PCT    largest growth of the live heap allowed (default ${d.heapLimit})
  --client-processes N processes the clients run in (default ${d.clientProcesses})
  --serve-args="…"    extra \`fanout serve\` flags for the nodes
  --out DIR           where to write the report (default bench-results)
`;

/** Seconds from `90s`, `10m`, `2h` or a plain number of seconds. */
export function parseDuration(flag: string, value: string): number {
  const m = /^(\d+(?:\.\d+)?)(s|m|min|h)?$/.exec(value.trim());
  if (!m) throw new ConfigError(flag, `expected a duration like 90s, 10m or 2h, got ${JSON.stringify(value)}`);
  const n = Number(m[1]) * (m[2] === 'h' ? 3600 : m[2] === 'm' || m[2] === 'min' ? 60 : 1);
  return Math.round(n * 1000) / 1000;
}

function int(flag: string, value: string | undefined, fallback: number, min: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new ConfigError(flag, `expected an integer ≥ ${min}, got ${JSON.stringify(value)}`);
  return n;
}

function fileLimit(): number {
  const n = Number(spawnSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).stdout.trim());
  return Number.isFinite(n) && n > 0 ? n : 1024;
}

/** The soak's options from `argv` (with `--soak DURATION`). */
export function parseSoakArgs(argv: readonly string[]): { help: boolean; shape: SoakShape; out: string; maxconn: number } {
  let values;
  try {
    const flags = ['soak', 'steady', 'channels', 'rate', 'churn', 'presence', 'nodes', 'restart-every', 'restart-signal', 'report', 'sample', 'presence-grace', 'drain', 'heap-limit', 'client-processes', 'serve-args', 'out'];
    const options = Object.fromEntries(flags.map((f) => [f, { type: 'string' as const }]));
    values = parseArgs({ args: [...argv], options: { ...options, help: { type: 'boolean', short: 'h' } }, strict: true }).values as Record<string, string | undefined> & { help?: boolean };
  } catch (err) {
    const e = err as Error & { code?: string };
    if (e.code?.startsWith('ERR_PARSE_ARGS')) throw new ConfigError(/'(--?[^']+)'/.exec(e.message)?.[1] ?? 'argument', e.message);
    throw err;
  }
  if (values.help) return { help: true, shape: { ...d, duration: 0 }, out: '', maxconn: 0 };
  if (values.soak === undefined) throw new ConfigError('--soak', 'expected a duration, e.g. --soak 2h');
  const duration = parseDuration('--soak', values.soak);
  if (duration < 10) throw new ConfigError('--soak', `expected at least 10 s, got ${duration} s`);
  const report = values.report !== undefined ? parseDuration('--report', values.report) : duration < 1200 ? Math.max(5, Math.round(duration / 4)) : d.report;
  const sample = values.sample !== undefined ? parseDuration('--sample', values.sample) : Math.min(d.sample, Math.max(1, Math.round(report / 3)));
  const restartEvery = values['restart-every'] !== undefined ? parseDuration('--restart-every', values['restart-every']) : Math.min(d.restartEvery, Math.round(duration / 3));
  if (report <= 0) throw new ConfigError('--report', 'expected more than 0 s');
  if (sample <= 0 || sample > report) throw new ConfigError('--sample', `expected more than 0 s and at most --report (${report} s)`);
  const signal = values['restart-signal'] ?? 'TERM';
  if (signal !== 'TERM' && signal !== 'KILL') throw new ConfigError('--restart-signal', `expected TERM or KILL, got ${JSON.stringify(signal)}`);
  const heapLimit = Number(values['heap-limit'] ?? d.heapLimit);
  if (!(heapLimit >= 0)) throw new ConfigError('--heap-limit', `expected a percentage ≥ 0, got ${JSON.stringify(values['heap-limit'])}`);
  const shape: SoakShape = {
    ...d,
    duration,
    steady: int('--steady', values.steady, d.steady, 1),
    channels: int('--channels', values.channels, d.channels, 1),
    rate: int('--rate', values.rate, d.rate, 1),
    churn: int('--churn', values.churn, d.churn, 0),
    presence: int('--presence', values.presence, d.presence, 0),
    nodes: int('--nodes', values.nodes, d.nodes, 1),
    restartEvery,
    restartSignal: signal === 'KILL' ? 'SIGKILL' : 'SIGTERM',
    report,
    sample,
    presenceGrace: int('--presence-grace', values['presence-grace'], d.presenceGrace, 1),
    drain: int('--drain', values.drain, d.drain, 1),
    heapLimit,
    clientProcesses: int('--client-processes', values['client-processes'], d.clientProcesses, 1),
    serveArgs: values['serve-args']?.split(' ').filter(Boolean) ?? [],
  };
  if (shape.channels > shape.steady) throw new ConfigError('--channels', `expected at most --steady (${shape.steady})`);
  // HAProxy holds two descriptors per connection: the open sockets plus the churn's timeout's worth.
  const maxconn = Math.min(9000, Math.floor((fileLimit() - 1000) / 2));
  const sockets = shape.steady + shape.presence + shape.churn * 2 + 10;
  if (sockets > maxconn) throw new ConfigError('--presence', `${sockets} connections at once is more than HAProxy's ${maxconn} with this file limit: give fewer --steady, --presence or --churn`);
  return { help: false, shape, out: resolve(values.out ?? 'bench-results'), maxconn };
}

/** Runs the soak; rejects with the failed checks' names after logging one line per check. */
export async function soakCommand(argv: readonly string[]): Promise<void> {
  const options = parseSoakArgs(argv);
  if (options.help) {
    process.stdout.write(SOAK_HELP);
    return;
  }
  const log = (line: string) => process.stderr.write(`bench: ${line}\n`);
  const loadAtStart = loadavg()[0]!;
  const redis = await startRedis();
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      log(`${signal}: stopping what the soak started`);
      void Promise.allSettled([...runningSoaks].map((s) => s.stop()))
        .then(() => redis.stop())
        .finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
    });
  }
  const startedAt = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  let result;
  try {
    result = await runSoak(options.shape, redis.url, log, options.maxconn);
  } finally {
    await redis.stop();
  }
  const checks = soakChecks(result);
  const written = writeSoakReport(options.out, {
    startedAt,
    command: `npm run bench -- ${argv.join(' ')}`.trim(),
    machine: `${cpus().length} × ${cpus()[0]?.model.trim() ?? 'cpu'}, ${(totalmem() / 2 ** 30).toFixed(0)} GB, Node ${process.version}, load average ${loadAtStart.toFixed(1)} at the start and ${loadavg()[0]!.toFixed(1)} at the end`,
    result,
    checks,
  });
  log(`wrote ${written.join(', ')}`);
  for (const c of checks) log(`${c.ok ? 'ok' : 'FAIL'} ${c.line}`);
  const failed = checks.filter((c) => !c.ok);
  if (failed.length > 0) throw new Error(`soak failed: ${failed.map((c) => c.name).join(', ')}`);
}
