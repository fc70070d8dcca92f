/**
 * `npm run bench -- [options]`: starts every system side by side on this machine, drives each
 * with the same load generator through HAProxy, interleaving them rate by rate, and writes
 * BENCHMARKS.md, benchmarks.svg and benchmarks.json.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { ConfigError } from '../src/errors.js';
import { BENCH_BROKERS, BROKER_LABELS, HISTORY_LOG_LABELS, HISTORY_LOGS, startBenchBroker, type BenchBroker, type BenchBrokerHandle, type HistoryLog } from './brokers.js';
import { faultsCommand } from './faults-command.js';
import { soakCommand } from './soak-command.js';
import { runPoint, runScale, type PointResult, type ScaleResult } from './measure.js';
import { markdown, svg, type BenchRun, type BrokerPoint, type HistoryPoint } from './report.js';
import { keepSections } from './report-sections.js';
import { nodesOf, publishersOf, startRedis, startSystem, SYSTEM_LABELS, SYSTEM_NAMES, type OwnRedis, type RunningSystem, type SystemName } from './systems.js';

/** Defaults: the full sweep takes a few minutes. */
export const BENCH_DEFAULTS = {
  clients: 2000,
  rates: '25,50,100,200',
  duration: 5,
  warmup: 1,
  brokerWarmup: 30,
  systems: 'fanout,fanout-turn,socketio,seed,seed2,channels,pusher,sse,sse-session',
  nodes: 2,
  workers: 2,
  out: 'bench-results',
  brokers: 'redis,nats,amqp,redis-cluster,kafka',
  brokerLoads: '2000x100,20x5000',
  historyLogs: 'redis,nats,kafka',
  historyLoads: '2000x100',
  scale: 48_000,
  scaleNodes: 3,
  scaleInterval: 4,
  scaleDuration: 40,
  scaleSystems: 'fanout,ws-bare,socketio,seed',
  amqpUrl: 'amqp://guest:guest@127.0.0.1:5672',
} as const;

export const BENCH_HELP = `Usage: npm run bench -- [options]

Runs Fanout, Socket.IO (redis adapter) and the express-ws seed server side by side on this machine,
each behind HAProxy, drives them with one load generator, and writes BENCHMARKS.md, benchmarks.svg
and benchmarks.json into --out (bench-results/ by default, so the committed report is only
replaced on purpose, with --out .); sections of an existing BENCHMARKS.md it does not write (faults,
soak, delta compression, notes) are kept, after its own. Needs haproxy and redis-server on PATH.

  --clients N       WebSocket clients per point (default ${BENCH_DEFAULTS.clients})
  --rates LIST      publisher messages/s to sweep (default ${BENCH_DEFAULTS.rates})
  --duration S      measured seconds per point (default ${BENCH_DEFAULTS.duration})
  --warmup S        unmeasured seconds of publishing before each point (default ${BENCH_DEFAULTS.warmup})
  --broker-warmup S the same before each started broker's first point: a JVM (Kafka) is measured
                    compiled, as a long-running broker is (default ${BENCH_DEFAULTS.brokerWarmup}; every broker alike)
  --systems LIST    any of ${SYSTEM_NAMES.join(',')} (default ${BENCH_DEFAULTS.systems});
                    seed2 (the seed server on 2 nodes) runs at the lowest rate only;
                    fanout-turn is Fanout with --coalesce-ms 0 (a write per socket per turn);
                    channels is /ws/v1 (one channel, publisher over a WebSocket and over
                    POST /api/publish), sse the same channel with its clients on SSE (plain
                    EventSource streams, GET /ws/v1/sse?channel=…), sse-session with SSE
                    sessions subscribed by a POST as the SDK does; both reported beside it;
                    pusher is the Pusher protocol on /app/{key} (pusher-js's frames), published
                    with the pusher library (POST /apps/{id}/events), beside the channels rows
  --bus URL         broker for the Fanout nodes (default: a redis-server the bench starts)
  --brokers LIST    after the sweep, Fanout again over each of ${BENCH_BROKERS.join(',')},
                    or none (default ${BENCH_DEFAULTS.brokers}); NATS, the Redis Cluster and Kafka
                    are started by the bench, RabbitMQ is the one at --amqp-url
  --broker-loads L  CLIENTSxRATE points for each broker (default ${BENCH_DEFAULTS.brokerLoads}:
                    the sweep's target point, and few clients with many messages through the broker)
  --history-logs L  after the brokers, the channel path (/ws/v1) over each log that holds channel
                    history, with its bus: any of ${HISTORY_LOGS.join(',')} or none (default
                    ${BENCH_DEFAULTS.historyLogs}: Redis Streams, JetStream, the Kafka log)
  --history-loads L CLIENTSxRATE points for each history log (default ${BENCH_DEFAULTS.historyLoads})
  --amqp-url URL    RabbitMQ for the amqp run (default ${BENCH_DEFAULTS.amqpUrl})
  --nodes N         Fanout and Socket.IO nodes (default ${BENCH_DEFAULTS.nodes})
  --scale N         connections for the connection-scale run, last, on systems of its own
                    (default ${BENCH_DEFAULTS.scale}; 0 to skip): opened from several client
                    processes and source addresses through one HAProxy per ~8500 connections
                    (each with its own \`source\`), memory read while idle, then one broadcast
                    every --scale-interval seconds for --scale-duration seconds, heartbeats on
  --scale-nodes N   nodes of each system in the scale run (default ${BENCH_DEFAULTS.scaleNodes})
  --scale-interval S seconds between the scale run's broadcasts (default ${BENCH_DEFAULTS.scaleInterval})
  --scale-duration S measured seconds of the scale run (default ${BENCH_DEFAULTS.scaleDuration})
  --scale-systems L systems in the scale run (default ${BENCH_DEFAULTS.scaleSystems}; ws-bare is
                    a broadcaster written with ws and Redis pub/sub, the floor to compare with;
                    a one-process system past its file limit is listed as not run, with why)
  --workers N       load-generator threads (default ${BENCH_DEFAULTS.workers})
  --out DIR         where to write the report (default ${BENCH_DEFAULTS.out})
  --serve-args="…"  extra \`fanout serve\` flags for the Fanout nodes (e.g. --serve-args="--coalesce-ms 0")
  --cpu-prof DIR    run the server processes with node --cpu-prof, profiles into DIR
  --faults          delivery under network faults instead (\`npm run bench -- --faults --help\`)
`;

/**
 * How the connection-scale run spreads `connections`: client processes and nodes each under
 * the file limit (with a margin for their other descriptors), one HAProxy process per
 * `maxconn - 500` connections (two descriptors each).
 */
export function planScale(connections: number, nodes: number, limit: number, maxconn: number): { processes: number; frontends: number; perNode: number } {
  const perNode = limit - 1000;
  if (connections > 0 && Math.ceil(connections / nodes) > perNode) {
    throw new ConfigError('--scale-nodes', `${nodes} node(s) cannot hold ${connections} sockets with a file limit of ${limit} (at most ${perNode} each): give more nodes or a smaller --scale`);
  }
  return { processes: Math.max(1, Math.ceil(connections / (limit - 4000))), frontends: Math.max(1, Math.ceil(connections / (maxconn - 500))), perNode };
}

/** One `source` address per HAProxy process of a scale run, 127.1.R.x, a new R for each system. */
export function frontendSources(count: number, round: number): string[] {
  return Array.from({ length: count }, (_, i) => `127.1.${round % 250}.${1 + i}`);
}

/** The soft file-descriptor limit of this process (children inherit it). */
function fileLimit(): number {
  const out = spawnSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' });
  const n = Number(out.stdout.trim());
  return Number.isFinite(n) && n > 0 ? n : 1024;
}

function positiveInt(flag: string, value: string | undefined, fallback: number, min = 1): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new ConfigError(flag, `expected an integer ≥ ${min}, got ${JSON.stringify(value)}`);
  return n;
}

/** Source addresses for `clients` connections: one per 20000, rotated by `offset` (a point meets no TIME_WAIT of the last). */
export function sourceAddresses(clients: number, offset: number): string[] {
  const count = Math.max(1, Math.ceil(clients / 20_000));
  return Array.from({ length: count }, (_, i) => `127.0.0.${2 + ((offset * count + i) % 250)}`);
}

function version(cmd: string, args: string[], re: RegExp): string {
  const out = spawnSync(cmd, args, { encoding: 'utf8' });
  return re.exec(`${out.stdout ?? ''}${out.stderr ?? ''}`)?.[1] ?? '?';
}

function parseBenchArgs(argv: readonly string[]) {
  return parseArgs({
    args: [...argv],
    options: {
      clients: { type: 'string' },
      rates: { type: 'string' },
      duration: { type: 'string' },
      warmup: { type: 'string' },
      'broker-warmup': { type: 'string' },
      systems: { type: 'string' },
      bus: { type: 'string' },
      nodes: { type: 'string' },
      scale: { type: 'string' },
      'scale-nodes': { type: 'string' },
      'scale-interval': { type: 'string' },
      'scale-duration': { type: 'string' },
      'scale-systems': { type: 'string' },
      workers: { type: 'string' },
      out: { type: 'string' },
      'cpu-prof': { type: 'string' },
      'serve-args': { type: 'string' },
      brokers: { type: 'string' },
      'broker-loads': { type: 'string' },
      'history-logs': { type: 'string' },
      'history-loads': { type: 'string' },
      'amqp-url': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
}

export async function benchCommand(argv: readonly string[]): Promise<void> {
  if (argv.includes('--faults')) return faultsCommand(argv.filter((a) => a !== '--faults'));
  if (argv.some((a) => a === '--soak' || a.startsWith('--soak='))) return soakCommand(argv);
  let parsed;
  try {
    parsed = parseBenchArgs(argv);
  } catch (err) {
    const e = err as Error & { code?: string };
    if (e.code?.startsWith('ERR_PARSE_ARGS')) throw new ConfigError(/'(--?[^']+)'/.exec(e.message)?.[1] ?? 'argument', e.message);
    throw err;
  }
  const { values } = parsed;
  if (values.help) {
    process.stdout.write(BENCH_HELP);
    return;
  }
  const limit = fileLimit();
  // HAProxy holds two descriptors per proxied connection, plus a margin for its own.
  const maxconn = Math.min(9000, Math.floor((limit - 1000) / 2));
  const clients = positiveInt('--clients', values.clients, BENCH_DEFAULTS.clients);
  if (clients > maxconn - 100) throw new ConfigError('--clients', `at most ${maxconn - 100} with a file limit of ${limit} (HAProxy needs two descriptors per connection)`);
  const duration = positiveInt('--duration', values.duration, BENCH_DEFAULTS.duration);
  const warmup = positiveInt('--warmup', values.warmup, BENCH_DEFAULTS.warmup, 0);
  const brokerWarmup = positiveInt('--broker-warmup', values['broker-warmup'], BENCH_DEFAULTS.brokerWarmup, 0);
  const firstOnBroker = (i: number): number => (i === 0 ? Math.max(warmup, brokerWarmup) : warmup);
  const nodes = positiveInt('--nodes', values.nodes, BENCH_DEFAULTS.nodes);
  const workers = positiveInt('--workers', values.workers, BENCH_DEFAULTS.workers);
  const scale = positiveInt('--scale', values.scale, BENCH_DEFAULTS.scale, 0);
  const scaleNodes = positiveInt('--scale-nodes', values['scale-nodes'], BENCH_DEFAULTS.scaleNodes);
  const scaleInterval = positiveInt('--scale-interval', values['scale-interval'], BENCH_DEFAULTS.scaleInterval);
  const scaleDuration = positiveInt('--scale-duration', values['scale-duration'], BENCH_DEFAULTS.scaleDuration);
  if (scaleDuration < scaleInterval) throw new ConfigError('--scale-duration', `expected at least --scale-interval (${scaleInterval} s)`);
  const scalePlan = planScale(scale, scaleNodes, limit, maxconn);
  const scaleSystems = (values['scale-systems'] ?? BENCH_DEFAULTS.scaleSystems).split(',').map((s) => {
    if (!(SYSTEM_NAMES as readonly string[]).includes(s)) throw new ConfigError('--scale-systems', `unknown system ${JSON.stringify(s)} (one of ${SYSTEM_NAMES.join(', ')})`);
    return s as SystemName;
  });
  const rates = (values.rates ?? BENCH_DEFAULTS.rates).split(',').map((r) => {
    const n = Number(r);
    if (!(n > 0)) throw new ConfigError('--rates', `expected positive messages/s, got ${JSON.stringify(r)}`);
    return n;
  });
  const systems = (values.systems ?? BENCH_DEFAULTS.systems).split(',').map((s) => {
    if (!(SYSTEM_NAMES as readonly string[]).includes(s)) throw new ConfigError('--systems', `unknown system ${JSON.stringify(s)} (one of ${SYSTEM_NAMES.join(', ')})`);
    return s as SystemName;
  });
  const brokersValue = values.brokers ?? BENCH_DEFAULTS.brokers;
  const brokers = brokersValue === 'none' ? [] : brokersValue.split(',').map((b) => {
    if (!(BENCH_BROKERS as readonly string[]).includes(b)) throw new ConfigError('--brokers', `unknown broker ${JSON.stringify(b)} (any of ${BENCH_BROKERS.join(', ')}, or none)`);
    return b as BenchBroker;
  });
  const loads = (flag: string, value: string) =>
    value.split(',').map((load) => {
      const m = /^(\d+)x(\d+)$/.exec(load);
      const [c, r] = [Number(m?.[1]), Number(m?.[2])];
      if (!m || c < 1 || r < 1) throw new ConfigError(flag, `expected CLIENTSxRATE, e.g. 2000x100, got ${JSON.stringify(load)}`);
      if (c > maxconn - 100) throw new ConfigError(flag, `at most ${maxconn - 100} clients with a file limit of ${limit}`);
      return { clients: c, rate: r };
    });
  const brokerLoads = loads('--broker-loads', values['broker-loads'] ?? BENCH_DEFAULTS.brokerLoads);
  const logsValue = values['history-logs'] ?? BENCH_DEFAULTS.historyLogs;
  const historyLogs = logsValue === 'none' ? [] : logsValue.split(',').map((b) => {
    if (!(HISTORY_LOGS as readonly string[]).includes(b)) throw new ConfigError('--history-logs', `unknown history log ${JSON.stringify(b)} (any of ${HISTORY_LOGS.join(', ')}, or none)`);
    return b as HistoryLog;
  });
  const historyLoads = loads('--history-loads', values['history-loads'] ?? BENCH_DEFAULTS.historyLoads);
  const amqpUrl = values['amqp-url'] ?? BENCH_DEFAULTS.amqpUrl;
  if (!/^amqps?:\/\//.test(amqpUrl)) throw new ConfigError('--amqp-url', `expected amqp://… or amqps://…, got ${JSON.stringify(amqpUrl)}`);
  const out = resolve(values.out ?? BENCH_DEFAULTS.out);

  const log = (line: string) => process.stderr.write(`bench: ${line}\n`);
  const summary = (p: PointResult) =>
    `  ${(p.deliveriesPerSec / 1000).toFixed(1)}k/s, ${(p.ratio * 100).toFixed(2)}% delivered, p50 ${p.p50.toFixed(1)} ms, p99 ${p.p99.toFixed(1)} ms, ` +
    `${p.cpuPerDelivery.toFixed(2)} µs CPU/delivery${p.errors.length ? `; ${p.errors.join('; ')}` : ''}`;
  const serveArgs = values['serve-args']?.split(' ').filter(Boolean);
  const cpuProf = values['cpu-prof'] && resolve(values['cpu-prof']);
  const redis: OwnRedis = await startRedis();
  const bus = values.bus ?? redis.url;
  const running = new Map<SystemName, RunningSystem>();
  const skipped: { system: string; reason: string }[] = [];
  const points: PointResult[] = [];
  const brokerPoints: BrokerPoint[] = [];
  const historyPoints: HistoryPoint[] = [];
  const scaleResults: ScaleResult[] = [];
  const stopAll = async () => {
    await Promise.all([...running.values()].map((s) => s.stop()));
    await redis.stop();
  };
  process.once('SIGINT', () => void stopAll().then(() => process.exit(130)));
  try {
    let round = 0;
    for (const name of systems) {
      try {
        running.set(name, await startSystem(name, { bus, redisUrl: redis.url, brokerPids: values.bus ? [] : [redis.pid], nodes, maxconn, cpuProf, serveArgs }));
        log(`started ${SYSTEM_LABELS[name]}`);
      } catch (err) {
        skipped.push({ system: name, reason: (err as Error).message.split('\n')[0]! });
        log(`could not start ${name}: ${(err as Error).message}`);
      }
    }
    for (const rate of rates) {
      for (const name of systems) {
        const system = running.get(name);
        if (!system) continue;
        if (name === 'seed2' && rate !== Math.min(...rates)) continue;
        for (const publishVia of publishersOf(name)) {
          log(`${name}${name === 'channels' ? ` (${publishVia})` : ''}: ${clients} clients × ${rate} msg/s`);
          try {
            const p = await runPoint(system, { clients, rate, duration, warmup, workers, publishVia, localAddresses: sourceAddresses(clients, round++) });
            points.push(p);
            log(summary(p));
          } catch (err) {
            const reason = (err as Error).message.split('\n')[0]!.replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' ').trim();
            log(`  failed: ${reason}`);
            skipped.push({ system: `${SYSTEM_LABELS[name]}${name === 'channels' ? `, publisher via ${publishVia}` : ''} at ${rate} msg/s`, reason });
          }
        }
      }
    }
    // The same Fanout over each broker, one at a time, each broker only up while it is measured.
    for (const broker of brokers) {
      let handle: BenchBrokerHandle | undefined;
      let system: RunningSystem | undefined;
      try {
        handle = await startBenchBroker(broker, redis, amqpUrl);
        system = await startSystem('fanout', { bus: handle.url, redisUrl: redis.url, brokerPids: handle.pids, nodes, maxconn, cpuProf, serveArgs });
        for (const [i, load] of brokerLoads.entries()) {
          log(`broker ${broker}: ${load.clients} clients × ${load.rate} msg/s`);
          const p = await runPoint(system, { ...load, duration, warmup: firstOnBroker(i), workers, publishVia: 'socket', localAddresses: sourceAddresses(load.clients, round++) });
          brokerPoints.push({ broker, point: p, brokerCpuCounted: handle.pids.length > 0 });
          log(summary(p));
        }
      } catch (err) {
        const reason = (err as Error).message.split('\n')[0]!;
        log(`  failed: ${reason}`);
        skipped.push({ system: `Fanout over ${BROKER_LABELS[broker]}`, reason });
      } finally {
        await system?.stop();
        await handle?.stop();
      }
    }
    // The channel path over each log that holds history, the bus being that log's broker.
    for (const broker of historyLogs) {
      let handle: BenchBrokerHandle | undefined;
      let system: RunningSystem | undefined;
      try {
        handle = await startBenchBroker(broker, redis, amqpUrl);
        system = await startSystem('channels', { bus: handle.url, redisUrl: redis.url, brokerPids: handle.pids, nodes, maxconn, cpuProf, serveArgs });
        for (const [i, load] of historyLoads.entries()) {
          log(`channels over ${HISTORY_LOG_LABELS[broker]}: ${load.clients} clients × ${load.rate} msg/s`);
          const p = await runPoint(system, { ...load, duration, warmup: firstOnBroker(i), workers, publishVia: 'socket', localAddresses: sourceAddresses(load.clients, round++) });
          historyPoints.push({ log: broker, point: p, brokerCpuCounted: handle.pids.length > 0 });
          log(summary(p));
        }
      } catch (err) {
        const reason = (err as Error).message.split('\n')[0]!;
        log(`  failed: ${reason}`);
        skipped.push({ system: `Fanout channels over ${HISTORY_LOG_LABELS[broker]}`, reason });
      } finally {
        await system?.stop();
        await handle?.stop();
      }
    }
    // Connection scale last, each system on processes of its own: points measured right after
    // 48 000 sockets closed met the kernel still tearing down their TCP state (p99 at 25 msg/s
    // went from ~40 ms to ~160 ms, for Socket.IO as much).
    await Promise.all([...running.values()].map((s) => s.stop()));
    running.clear();
    if (scale > 0) {
      for (const name of scaleSystems) {
        const processes = nodesOf(name, scaleNodes);
        if (Math.ceil(scale / processes) > scalePlan.perNode) {
          skipped.push({ system: `${SYSTEM_LABELS[name]} in the connection-scale run`, reason: `${processes} process(es) hold at most ${processes * scalePlan.perNode} of the ${scale} sockets with a file limit of ${limit}` });
          continue;
        }
        let system: RunningSystem | undefined;
        try {
          system = await startSystem(name, { bus, redisUrl: redis.url, brokerPids: values.bus ? [] : [redis.pid], nodes: scaleNodes, maxconn, frontendSources: frontendSources(scalePlan.frontends, round), cpuProf, serveArgs });
          running.set(name, system); // so that Ctrl-C stops it too
          log(`scale: ${name}, ${scale} connections from ${scalePlan.processes} client processes through ${scalePlan.frontends} HAProxy processes to ${system.nodePids.length} nodes`);
          const result = await runScale(system, { clients: scale, processes: scalePlan.processes, localAddresses: sourceAddresses(scale, round++), interval: scaleInterval, duration: scaleDuration });
          log(
            `  ${result.connected} connected, ${(result.nodeRssPerConn / 1024).toFixed(1)} KB per idle connection in the nodes; ` +
              `${(result.ratio * 100).toFixed(2)}% delivered, p50 ${result.p50.toFixed(0)} ms, p99 ${result.p99.toFixed(0)} ms, ${result.cpuPerDelivery.toFixed(2)} µs CPU/delivery` +
              `${result.errors.length ? `; ${result.errors.join('; ')}` : ''}`,
          );
          scaleResults.push(result);
        } catch (err) {
          const reason = (err as Error).message.split('\n')[0]!;
          log(`  failed: ${reason}`);
          skipped.push({ system: `${SYSTEM_LABELS[name]} in the connection-scale run`, reason });
        } finally {
          await system?.stop();
          running.delete(name);
        }
      }
    }
  } finally {
    await stopAll();
  }
  const run: BenchRun = {
    startedAt: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    command: `npm run bench -- ${argv.join(' ')}`.replace(/ -- $/, '').trim(),
    machine: `${cpus().length} × ${cpus()[0]?.model.trim() ?? 'cpu'}, ${(totalmem() / 2 ** 30).toFixed(0)} GB, file limit ${limit}`,
    versions: `Node ${process.version}, HAProxy ${version('haproxy', ['-v'], /version (\S+)/)}, Redis ${version('redis-server', ['--version'], /v=(\S+)/)}`,
    clients,
    duration, brokerWarmup,
    bus: values.bus ? values.bus : 'a redis-server started by the bench (shared by Fanout and Socket.IO)',
    points,
    brokers: brokerPoints,
    histories: historyPoints,
    scale: scaleResults,
    skipped,
  };
  mkdirSync(out, { recursive: true });
  // Sections other runs or people wrote into the report (faults, soak, delta…) stay.
  const report = join(out, 'BENCHMARKS.md');
  writeFileSync(report, keepSections(existsSync(report) ? readFileSync(report, 'utf8') : undefined, markdown(run)));
  writeFileSync(join(out, 'benchmarks.svg'), svg(points.filter((p) => p.system !== 'seed2')));
  writeFileSync(join(out, 'benchmarks.json'), JSON.stringify(run, null, 2) + '\n');
  log(`wrote ${join(out, 'BENCHMARKS.md')}, benchmarks.svg and benchmarks.json`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  benchCommand(process.argv.slice(2)).catch((err: unknown) => {
    process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(err instanceof ConfigError ? 2 : 1);
  });
}
