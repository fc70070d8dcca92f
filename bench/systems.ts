/**
 * The systems under test, each started the same way: N server processes on 127.0.0.1, HAProxy in
 * front of them from Fanout's generated config, and the broker they share.
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../harness/ports.js';
import { HAPROXY_DEFAULTS, haproxyConfig } from '../src/haproxy/config.js';
import type { Target } from './loadgen.js';

/**
 * Every system the bench knows. `seed2` is the seed server on two nodes, to show its losses;
 * `fanout-turn` is Fanout with `--coalesce-ms 0`, to show what joining writes across turns buys.
 */
export const SYSTEM_NAMES = ['fanout', 'fanout-turn', 'socketio', 'seed', 'seed2', 'channels'] as const;
export type SystemName = (typeof SYSTEM_NAMES)[number];

export const SYSTEM_LABELS: Record<SystemName, string> = {
  fanout: 'Fanout (2 nodes, Redis)',
  'fanout-turn': 'Fanout, --coalesce-ms 0 (2 nodes, Redis)',
  socketio: 'Socket.IO + redis-adapter (2 nodes)',
  seed: 'express-ws seed (1 node)',
  seed2: 'express-ws seed (2 nodes, no fan-out)',
  channels: 'Fanout channels /ws/v1 (2 nodes, Redis)',
};

export interface RunningSystem {
  readonly name: SystemName;
  readonly target: Target;
  readonly nodePids: readonly number[];
  readonly haproxyPid: number;
  /** The broker's processes whose CPU is counted (none when the bench does not know them). */
  readonly brokerPids: readonly number[];
  stop(): Promise<void>;
}

const MAIN = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const PEERS = fileURLToPath(new URL('../../bench/peers/', import.meta.url));
/** The channel every channel-protocol client subscribes to. */
export const BENCH_CHANNEL = 'bench';

export { freePort };

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited(child);
  clearTimeout(timer);
}

/** A Redis the bench owns, so its CPU can be attributed to the system under test. */
export interface OwnRedis {
  readonly url: string;
  readonly pid: number;
  stop(): Promise<void>;
}

export async function startRedis(): Promise<OwnRedis> {
  const port = await freePort();
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  child.on('error', (err) => (output += err.message));
  const deadline = Date.now() + 10_000;
  while (!output.includes('Ready to accept connections')) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`redis-server did not start: ${output}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return { url: `redis://127.0.0.1:${port}`, pid: child.pid!, stop: () => stopChild(child) };
}

/** Forks a server process and waits for its `{type:'listening', port}` message. */
function forkServer(module: string, args: readonly string[], env: NodeJS.ProcessEnv, cpuProf: string | undefined): Promise<{ child: ChildProcess; port: number }> {
  const execArgv = cpuProf ? ['--cpu-prof', '--cpu-prof-dir', cpuProf] : [];
  const child = fork(module, args, { stdio: ['ignore', 'inherit', 'pipe', 'ipc'], env: { ...process.env, ...env }, execArgv });
  let output = '';
  child.stderr!.on('data', (d: Buffer) => {
    output += d.toString();
    process.stderr.write(d);
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${module} did not start: ${output}`)), 20_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${module} exited with ${code} before listening: ${output}`));
    });
    child.on('message', (msg: { type?: string; port?: number }) => {
      if (msg?.type !== 'listening' || typeof msg.port !== 'number') return;
      clearTimeout(timer);
      resolve({ child, port: msg.port });
    });
  });
}

/** HAProxy from Fanout's generated config, in front of `ports`. */
async function startHaproxy(ports: readonly number[], maxconn: number): Promise<{ child: ChildProcess; port: number; stop(): Promise<void> }> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'fanout-bench-'));
  const file = join(dir, 'haproxy.cfg');
  writeFileSync(
    file,
    haproxyConfig({
      servers: ports.map((p) => ({ host: '127.0.0.1', port: p })),
      port,
      host: '127.0.0.1',
      balance: HAPROXY_DEFAULTS.balance,
      maxconn,
      checkInterval: HAPROXY_DEFAULTS.checkInterval,
    }),
  );
  const child = spawn('haproxy', ['-db', '-f', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  child.on('error', (err) => (output += err.message));
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`haproxy exited: ${output}`);
    try {
      const res = await fetch(`http://127.0.0.1:${port}/healthz`);
      await res.arrayBuffer();
      if (res.status === 200) break;
    } catch {
      /* not up yet */
    }
    if (Date.now() > deadline) throw new Error(`haproxy did not come up: ${output}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    child,
    port,
    stop: async () => {
      await stopChild(child);
      rmSync(dir, { recursive: true, force: true });
    },
  };
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
  /** HAProxy's maxconn. */
  readonly maxconn: number;
  /** Extra `fanout serve` flags for the Fanout nodes. */
  readonly serveArgs?: readonly string[];
  /** Directory for V8 CPU profiles of the server processes (`node --cpu-prof`), written when they stop. */
  readonly cpuProf?: string | undefined;
}

/** Starts one system and waits until HAProxy answers in front of it. */
export async function startSystem(name: SystemName, options: StartOptions): Promise<RunningSystem> {
  const prefix = `bench-${randomBytes(4).toString('hex')}`;
  // The channel run publishes through the HTTP API too, which is on only with a key.
  const apiKey = randomBytes(12).toString('hex');
  const extraArgs = name === 'channels' ? ['--api-key', apiKey] : name === 'fanout-turn' ? ['--coalesce-ms', '0'] : [];
  const children: ChildProcess[] = [];
  const nodes = name === 'seed' ? 1 : name === 'seed2' ? 2 : options.nodes;
  const ports: number[] = [];
  try {
    for (let i = 1; i <= nodes; i++) {
      const started =
        name === 'fanout' || name === 'fanout-turn' || name === 'channels'
          ? await forkServer(MAIN, ['serve', '--port', '0', '--host', '127.0.0.1', '--bus', options.bus, '--bus-prefix', prefix, '--node-id', `${prefix}-n${i}`, '--log-level', 'warn', '--drain-delay', '0', '--drain-timeout', '0', ...extraArgs, ...(options.serveArgs ?? [])], {}, options.cpuProf)
          : name === 'socketio'
            ? await forkServer(join(PEERS, 'socketio.cjs'), [], { PORT: '0', REDIS_URL: options.redisUrl, PREFIX: prefix }, options.cpuProf)
            : await forkServer(join(PEERS, 'express-ws.cjs'), [], { PORT: '0' }, options.cpuProf);
      children.push(started.child);
      ports.push(started.port);
    }
  } catch (err) {
    await Promise.all(children.map(stopChild));
    throw err;
  }
  const haproxy = await startHaproxy(ports, options.maxconn).catch(async (err: unknown) => {
    await Promise.all(children.map(stopChild));
    throw err;
  });
  const target: Target =
    name === 'socketio'
      ? { host: '127.0.0.1', port: haproxy.port, path: '/socket.io/?EIO=4&transport=websocket', protocol: 'socketio' }
      : name === 'channels'
        ? { host: '127.0.0.1', port: haproxy.port, path: '/ws/v1', protocol: 'channel', channel: BENCH_CHANNEL, apiKey }
        : { host: '127.0.0.1', port: haproxy.port, path: '/ws/echo', protocol: 'text' };
  return {
    name,
    target,
    nodePids: children.map((c) => c.pid!),
    haproxyPid: haproxy.child.pid!,
    brokerPids: name === 'seed' || name === 'seed2' ? [] : options.brokerPids,
    stop: async () => {
      await haproxy.stop();
      await Promise.all(children.map(stopChild));
    },
  };
}
