/**
 * The systems under test, each started the same way: N server processes on 127.0.0.1, HAProxy in
 * front of them from Fanout's generated config, and the broker they share.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startRedisServer } from '../harness/brokers.js';
import { forkFanoutServe, forkListening, waitReadyPort, type ForkOptions, type ServerProcess } from '../harness/fanout-process.js';
import { startHaproxy, type RunningHaproxy } from '../harness/haproxy.js';
import { untilEvent } from '../harness/wait.js';
import { parseBusAddress } from '../src/config/bus-address.js';
import { DEFAULTS } from '../src/config/defaults.js';
import { historyTarget } from '../src/config/history-target.js';
import { ConfigError } from '../src/errors.js';
import { HAPROXY_DEFAULTS } from '../src/haproxy/config.js';
import type { PublishVia, Target } from './loadgen.js';
import { PUSHER_LABEL, pusherBenchApp, pusherServeArgs, pusherTarget } from './pusher-system.js';

/**
 * Every system the bench knows. `seed2` is the seed server on two nodes, to show its losses;
 * `fanout-turn` is Fanout with `--coalesce-ms 0`, to show what joining writes across turns buys;
 * `ws-bare` is a broadcaster written by hand with `ws` and Redis pub/sub, the floor a hub is
 * measured against in the connection-scale run; `pusher` is Fanout's Pusher protocol on
 * /app/{key}, published through its HTTP API (bench/pusher-system.ts).
 * `sse` is the channel system (`channels`) with its
 * clients on the SSE transport instead of WebSockets, each a plain EventSource subscription
 * (`GET /ws/v1/sse?channel=…`), its publisher the same WebSocket as the channel row's;
 * `sse-session` the same with SDK-style sessions (`GET /ws/v1/sse`, then a POSTed `subscribe`).
 */
export const SYSTEM_NAMES = ['fanout', 'fanout-turn', 'socketio', 'seed', 'seed2', 'channels', 'pusher', 'sse', 'sse-session', 'ws-bare'] as const;
export type SystemName = (typeof SYSTEM_NAMES)[number];

export const SYSTEM_LABELS: Record<SystemName, string> = {
  fanout: 'Fanout (2 nodes, Redis)',
  'fanout-turn': 'Fanout, --coalesce-ms 0 (2 nodes, Redis)',
  socketio: 'Socket.IO + redis-adapter (2 nodes)',
  seed: 'express-ws seed (1 node)',
  seed2: 'express-ws seed (2 nodes, no fan-out)',
  channels: 'Fanout channels /ws/v1 (2 nodes, Redis)',
  sse: 'Fanout channels over SSE, plain EventSource (2 nodes, Redis)',
  'sse-session': 'Fanout channels over SSE, SDK sessions (2 nodes, Redis)',
  'ws-bare': 'bare ws + Redis pub/sub (2 nodes)',
  pusher: PUSHER_LABEL,
};

/**
 * How each system's publisher publishes, one point per way: the channel path over its socket and
 * POST /api/publish, the Pusher lane through its HTTP API only (a Pusher client cannot publish
 * to a public channel), the others over their socket.
 */
export function publishersOf(name: SystemName): readonly PublishVia[] {
  return name === 'channels' ? ['socket', 'http'] : name === 'pusher' ? ['http'] : ['socket'];
}

/** The systems whose nodes are `fanout serve`. */
const FANOUT_SYSTEMS: readonly SystemName[] = ['fanout', 'fanout-turn', 'channels', 'pusher', 'sse', 'sse-session'];

export interface RunningSystem {
  readonly name: SystemName;
  /** The first frontend. */
  readonly target: Target;
  /** Every frontend's port (one HAProxy process each); the first is the target's. */
  readonly frontendPorts: readonly number[];
  readonly nodePids: readonly number[];
  readonly haproxyPids: readonly number[];
  /** Each HAProxy process's haproxy.cfg, in frontend order. */
  readonly haproxyConfigs: readonly string[];
  /** The broker's processes whose CPU is counted (none when the bench does not know them). */
  readonly brokerPids: readonly number[];
  /** Has every node collect its garbage (a full GC); resolves with the sum of their live heaps (bytes) then. */
  collectGarbage(): Promise<{ readonly heapUsed: number }>;
  stop(): Promise<void>;
}

const PEERS = fileURLToPath(new URL('../../bench/peers/', import.meta.url));
/** The channel every channel-protocol client subscribes to. */
export const BENCH_CHANNEL = 'bench';

/** A Redis the bench owns, so its CPU can be attributed to the system under test. */
export interface OwnRedis {
  readonly url: string;
  readonly pid: number;
  stop(): Promise<void>;
}

export async function startRedis(): Promise<OwnRedis> {
  const redis = await startRedisServer();
  return { url: redis.url, pid: redis.pid!, stop: () => redis.stop() };
}

export interface StartOptions {
  /** Broker URL for the Fanout nodes (`--bus`). */
  readonly bus: string;
  /** Redis URL for Socket.IO's adapter. */
  readonly redisUrl: string;
  /** The broker's processes, to count their CPU. */
  readonly brokerPids: readonly number[];
  /** Fanout nodes and Socket.IO nodes. */
  readonly nodes: number;
  /** HAProxy's maxconn (per HAProxy process). */
  readonly maxconn: number;
  /**
   * One HAProxy process per address, each connecting to the nodes from it (`source`), for runs
   * past one process's file limit or one address's ports (default: one HAProxy, no source).
   */
  readonly frontendSources?: readonly string[];
  /** Extra `fanout serve` flags for the Fanout nodes. */
  readonly serveArgs?: readonly string[];
  /** Directory for V8 CPU profiles of the server processes (`node --cpu-prof`), written when they stop. */
  readonly cpuProf?: string | undefined;
}

/**
 * A bus that cannot hold channel history (a node refuses to start on it without --history) gets
 * one: memory for the echo systems (they never touch history), the bench's Redis for the channel
 * path (its nodes must share history). Nothing when the bus holds it or --serve-args names one.
 */
function historyArgs(name: SystemName, options: StartOptions): string[] {
  if (options.serveArgs?.some((a) => a === '--history' || a.startsWith('--history='))) return [];
  try {
    historyTarget(undefined, parseBusAddress(options.bus));
    return [];
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
  }
  return ['--history', isChannelSystem(name) || name === 'pusher' ? options.redisUrl : 'memory'];
}

/** The channel-protocol systems: Fanout with an API key and shared history, the clients subscribed to {@link BENCH_CHANNEL}. */
function isChannelSystem(name: SystemName): name is 'channels' | 'sse' | 'sse-session' {
  return name === 'channels' || name === 'sse' || name === 'sse-session';
}

/** How many server processes `name` runs with `nodes` asked for: the seed systems have their own counts. */
export function nodesOf(name: SystemName, nodes: number): number {
  return name === 'seed' ? 1 : name === 'seed2' ? 2 : nodes;
}

/** Starts one system and waits until HAProxy answers in front of it. */
export async function startSystem(name: SystemName, options: StartOptions): Promise<RunningSystem> {
  const prefix = `bench-${randomBytes(4).toString('hex')}`;
  // The channel run publishes through the HTTP API too, which is on only with a key.
  const apiKey = randomBytes(12).toString('hex');
  const pusherApp = pusherBenchApp();
  // The bench's one publisher socket stands for a back end pushing the whole load: no per-connection rate limit.
  const extraArgs = ['--rate-limit', '0', '--rate-limit-bytes', '0', ...(isChannelSystem(name) ? ['--api-key', apiKey] : name === 'fanout-turn' ? ['--coalesce-ms', '0'] : name === 'pusher' ? pusherServeArgs(pusherApp) : [])];
  const children: ServerProcess[] = [];
  const nodes = nodesOf(name, options.nodes);
  const wsBareEnv = { PORT: '0', REDIS_URL: options.redisUrl, PREFIX: prefix, HEARTBEAT_S: String(DEFAULTS.heartbeat) };
  const ports: number[] = [];
  // Server output goes to the bench's own stdout and stderr; profiles, when asked, into cpuProf.
  // Every server process can be asked for a full garbage collection (SIGUSR2), so memory is compared on live data.
  const gcArgs = ['--expose-gc', '--require', join(PEERS, 'gc-on-signal.cjs')];
  const fork: ForkOptions = { passThrough: true, timeoutMs: 20_000, execArgv: [...gcArgs, ...(options.cpuProf ? ['--cpu-prof', '--cpu-prof-dir', options.cpuProf] : [])] };
  const stopChildren = () => Promise.all(children.map((c) => c.stop()));
  try {
    for (let i = 1; i <= nodes; i++) {
      const started =
        FANOUT_SYSTEMS.includes(name)
          ? await forkFanoutServe(['--bus', options.bus, '--bus-prefix', prefix, '--node-id', `${prefix}-n${i}`, '--drain-delay', '0', '--drain-timeout', '0', ...extraArgs, ...historyArgs(name, options), ...(options.serveArgs ?? [])], fork)
          : name === 'socketio'
            ? await forkListening(join(PEERS, 'socketio.cjs'), [], { ...fork, env: { PORT: '0', REDIS_URL: options.redisUrl, PREFIX: prefix } })
            : name === 'ws-bare'
              ? await forkListening(join(PEERS, 'ws-bare.cjs'), [], { ...fork, env: wsBareEnv })
              : await forkListening(join(PEERS, 'express-ws.cjs'), [], { ...fork, env: { PORT: '0' } });
      children.push(started);
      ports.push(started.port);
    }
    // A Fanout node listens before its bus (and store) connect: a point measured before that
    // would see its subscribes refused. The peers' /readyz is HAProxy's check (startHaproxy waits for it).
    if (FANOUT_SYSTEMS.includes(name)) {
      for (const port of ports) await waitReadyPort(port, 30_000);
    }
  } catch (err) {
    await stopChildren();
    throw err;
  }
  const proxies: RunningHaproxy[] = [];
  const stopProxies = () => Promise.all(proxies.map((p) => p.stop()));
  try {
    for (const source of options.frontendSources ?? [undefined]) {
      proxies.push(await startHaproxy(ports, { maxconn: options.maxconn, checkInterval: HAPROXY_DEFAULTS.checkInterval, source }));
    }
  } catch (err) {
    await stopProxies();
    await stopChildren();
    throw err;
  }
  const haproxy = proxies[0]!;
  const target: Target =
    name === 'socketio'
      ? { host: '127.0.0.1', port: haproxy.port, path: '/socket.io/?EIO=4&transport=websocket', protocol: 'socketio' }
      : name === 'channels'
        ? { host: '127.0.0.1', port: haproxy.port, path: '/ws/v1', protocol: 'channel', channel: BENCH_CHANNEL, apiKey }
        : name === 'pusher'
          ? pusherTarget('127.0.0.1', haproxy.port, BENCH_CHANNEL, pusherApp)
          : name === 'sse'
            ? { host: '127.0.0.1', port: haproxy.port, path: `/ws/v1/sse?channel=${BENCH_CHANNEL}`, protocol: 'sse', channel: BENCH_CHANNEL, publishPath: '/ws/v1', apiKey }
            : name === 'sse-session'
              ? { host: '127.0.0.1', port: haproxy.port, path: '/ws/v1/sse', protocol: 'sse-session', channel: BENCH_CHANNEL, publishPath: '/ws/v1', apiKey }
              : { host: '127.0.0.1', port: haproxy.port, path: '/ws/echo', protocol: 'text' };
  return {
    name,
    target,
    frontendPorts: proxies.map((p) => p.port),
    nodePids: children.map((c) => c.pid),
    haproxyPids: proxies.map((p) => p.pid),
    haproxyConfigs: proxies.map((p) => p.config),
    brokerPids: name === 'seed' || name === 'seed2' ? [] : options.brokerPids,
    collectGarbage: async () => {
      const reports = children.map((c) =>
        untilEvent<[{ type?: string; heapUsed?: number }]>(c.child, 'message', {
          filter: (m) => m?.type === 'bench-memory',
          failOn: ['exit'],
          timeoutMs: 10_000,
          what: `node ${c.pid} to report its memory after a full GC`,
        }),
      );
      for (const c of children) c.child.kill('SIGUSR2');
      const heaps = await Promise.all(reports);
      return { heapUsed: heaps.reduce((sum, [m]) => sum + (m.heapUsed ?? 0), 0) };
    },
    stop: async () => {
      await stopProxies();
      await stopChildren();
    },
  };
}
