/**
 * `npm run bench -- --faults [options]`: parses the fault run's flags, checks that this machine can
 * make client namespaces (one line saying why not), and runs every profile on every system,
 * writing the report (bench/faults-report.ts). Everything it makes (namespaces, veth pairs,
 * nftables rules, proxies, servers, its Redis) is removed on exit and on SIGINT.
 */
import { cpus, loadavg, totalmem } from 'node:os';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ConfigError } from '../src/errors.js';
import { ClientNetwork, netnsUnavailable, removeAllOnExit } from '../harness/netns.js';
import { FAULT_SYSTEMS, type FaultSystem } from './faults-client.js';
import { FAULT_DEFAULTS, FAULT_PROFILES, runFaultPoint, runningFaultSystems, type FaultProfile, type FaultResult, type FaultShape } from './faults.js';
import { writeFaultsReport } from './faults-report.js';
import { startRedis } from './systems.js';

/** Client namespaces (and client processes) of a fault run. */
export const FAULT_NAMESPACES = 2;

export const FAULTS_HELP = `Usage: npm run bench -- --faults [options]

Delivery under network faults, side by side: Fanout with its SDK, Socket.IO 4 with connection
state recovery, and the seed server with its reconnecting page, each behind HAProxy. The
subscribers run in ${FAULT_NAMESPACES} network namespaces of their own (veth pairs, nftables for packet loss,
\`ip link set down\` for cuts, a delaying TCP proxy for delay). Needs root, iproute2, nftables,
haproxy and redis-server. Writes faults.md and faults.json into --out, and the "Delivery under
faults" section of --out's BENCHMARKS.md when there is one (--out . for the committed report).

  --profiles LIST   any of ${FAULT_PROFILES.join(',')} (default all four)
  --systems LIST    any of ${FAULT_SYSTEMS.join(',')} (default all three)
  --clients N       subscribers (default ${FAULT_DEFAULTS.clients})
  --rate N          messages/s (default ${FAULT_DEFAULTS.rate})
  --duration S      seconds of publishing per profile (default ${FAULT_DEFAULTS.duration})
  --loss PCT        packet loss each way, % (default ${FAULT_DEFAULTS.loss})
  --delay MS        mean delay per chunk, ms (default ${FAULT_DEFAULTS.delay})
  --jitter MS       ± spread of the delay, ms (default ${FAULT_DEFAULTS.jitter})
  --cut-every S     seconds between link cuts (default ${FAULT_DEFAULTS.cutEvery}; the first at half of it)
  --cut-for S       seconds each cut lasts (default ${FAULT_DEFAULTS.cutFor})
  --restart-after S seconds before the killed node starts again (default ${FAULT_DEFAULTS.restartAfter})
  --drain S         seconds to wait for recovery after the last publish, at most (default ${FAULT_DEFAULTS.drain})
  --out DIR         where to write the report (default bench-results)
`;

function number(flag: string, value: string | undefined, fallback: number, min: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n < min) throw new ConfigError(flag, `expected a number ≥ ${min}, got ${JSON.stringify(value)}`);
  return n;
}

function list<T extends string>(flag: string, value: string | undefined, all: readonly T[]): T[] {
  if (value === undefined) return [...all];
  return value.split(',').map((v) => {
    if (!(all as readonly string[]).includes(v)) throw new ConfigError(flag, `unknown ${JSON.stringify(v)} (any of ${all.join(', ')})`);
    return v as T;
  });
}

/** The fault run's options from `argv` (without `--faults`). */
export function parseFaultArgs(argv: readonly string[]): { help: boolean; profiles: FaultProfile[]; systems: FaultSystem[]; shape: FaultShape; out: string } {
  let values;
  try {
    const flags = ['profiles', 'systems', 'clients', 'rate', 'duration', 'loss', 'delay', 'jitter', 'cut-every', 'cut-for', 'restart-after', 'drain', 'out'];
    const options = Object.fromEntries(flags.map((f) => [f, { type: 'string' as const }]));
    values = parseArgs({ args: [...argv], options: { ...options, help: { type: 'boolean', short: 'h' } }, strict: true }).values as Record<string, string | undefined> & { help?: boolean };
  } catch (err) {
    const e = err as Error & { code?: string };
    if (e.code?.startsWith('ERR_PARSE_ARGS')) throw new ConfigError(/'(--?[^']+)'/.exec(e.message)?.[1] ?? 'argument', e.message);
    throw err;
  }
  const d = FAULT_DEFAULTS;
  const shape: FaultShape = {
    clients: number('--clients', values.clients, d.clients, 1),
    rate: number('--rate', values.rate, d.rate, 0.1),
    duration: number('--duration', values.duration, d.duration, 1),
    loss: number('--loss', values.loss, d.loss, 0),
    delay: number('--delay', values.delay, d.delay, 0),
    jitter: number('--jitter', values.jitter, d.jitter, 0),
    cutEvery: number('--cut-every', values['cut-every'], d.cutEvery, 0.1),
    cutFor: number('--cut-for', values['cut-for'], d.cutFor, 0.1),
    restartAfter: number('--restart-after', values['restart-after'], d.restartAfter, 0),
    drain: number('--drain', values.drain, d.drain, 1),
  };
  if (shape.loss > 100) throw new ConfigError('--loss', `expected a percentage from 0 to 100, got ${shape.loss}`);
  if (shape.cutFor >= shape.cutEvery) throw new ConfigError('--cut-for', `expected less than --cut-every (${shape.cutEvery} s)`);
  if (shape.jitter > shape.delay) throw new ConfigError('--jitter', `expected at most --delay (${shape.delay} ms)`);
  return {
    help: values.help === true,
    profiles: list('--profiles', values.profiles, FAULT_PROFILES),
    systems: list('--systems', values.systems, FAULT_SYSTEMS),
    shape,
    out: resolve(values.out ?? 'bench-results'),
  };
}

/** Runs the fault bench; rejects with a one-line reason when this machine cannot make namespaces. */
export async function faultsCommand(argv: readonly string[]): Promise<void> {
  const options = parseFaultArgs(argv);
  if (options.help) {
    process.stdout.write(FAULTS_HELP);
    return;
  }
  const missing = netnsUnavailable();
  if (missing) throw new Error(`--faults: ${missing}`);
  const log = (line: string) => process.stderr.write(`bench: ${line}\n`);
  removeAllOnExit();
  // The figures depend on what else runs here: the report says how loaded the machine was.
  const loadAtStart = loadavg()[0]!;
  const redis = await startRedis();
  // Interrupted: stop the servers, HAProxy and Redis, then exit (the namespaces go on exit).
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      log(`${signal}: stopping what the run started`);
      void Promise.allSettled([...runningFaultSystems].map((s) => s.stop()))
        .then(() => redis.stop())
        .finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
    });
  }
  const nets: ClientNetwork[] = [];
  const results: FaultResult[] = [];
  const failed: { point: string; reason: string }[] = [];
  try {
    for (let i = 0; i < FAULT_NAMESPACES; i++) nets.push(ClientNetwork.create());
    for (const profile of options.profiles) {
      for (const system of options.systems) {
        try {
          const r = await runFaultPoint(system, profile, redis.url, nets, options.shape, log);
          log(
            `${system} / ${profile}: ${r.delivered}/${r.expected} delivered (${((r.delivered / r.expected) * 100).toFixed(2)} %), ` +
              `${r.duplicates} duplicates, ${r.outOfOrder} out of order, p99 ${r.p99.toFixed(1)} ms, ${r.reconnects} reconnects, ${r.unrecovered} unrecovered`,
          );
          results.push(r);
        } catch (err) {
          const reason = (err as Error).message.split('\n')[0]!;
          log(`${system} / ${profile} failed: ${reason}`);
          failed.push({ point: `${system} / ${profile}`, reason });
        }
      }
    }
  } finally {
    for (const net of nets) net.remove();
    await redis.stop();
  }
  const written = writeFaultsReport(options.out, {
    startedAt: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    command: `npm run bench -- --faults ${argv.join(' ')}`.trim(),
    machine: `${cpus().length} × ${cpus()[0]?.model.trim() ?? 'cpu'}, ${(totalmem() / 2 ** 30).toFixed(0)} GB, Node ${process.version}, load average ${loadAtStart.toFixed(1)} at the start and ${loadavg()[0]!.toFixed(1)} at the end`,
    shape: options.shape,
    results,
    failed,
  });
  log(`wrote ${written.join(', ')}`);
}
