/**
 * `fanout cluster`: N nodes on free ports plus HAProxy in front of them, from the generated
 * config, until Ctrl-C. For development, demos, tests and the benchmark.
 */
import { fork, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CLUSTER_HELP, clusterSchema } from '../config/commands.js';
import { checkClusterHistory } from '../config/history-target.js';
import { loadServeConfig, parseCommand } from '../config/load.js';
import { ConfigError, FanoutError } from '../errors.js';
import { HAPROXY_DEFAULTS, haproxyConfig } from '../haproxy/config.js';

const MAIN = fileURLToPath(new URL('./main.js', import.meta.url));
const DEFAULT_CLUSTER_BUS = 'redis://127.0.0.1:6379';

export async function clusterCommand(argv: readonly string[]): Promise<void> {
  const split = argv.indexOf('--');
  const own = split === -1 ? argv : argv.slice(0, split);
  const serveArgs = split === -1 ? [] : argv.slice(split + 1);
  if (own.includes('--help')) {
    process.stdout.write(CLUSTER_HELP + '\n');
    return;
  }
  const { options, positionals } = parseCommand(clusterSchema, own);
  if (positionals.length > 0) throw new ConfigError(positionals[0]!, 'unexpected argument (serve flags go after --)');
  const nodeCount = clusterSize(options.nodes, options.nodePorts, options.port);
  const bus = options.bus ?? (nodeCount > 1 ? DEFAULT_CLUSTER_BUS : 'memory');
  if (bus === 'memory' && nodeCount > 1) {
    throw new ConfigError('--bus', 'the memory bus lives in one process; nodes of a cluster need a broker (redis://…)');
  }
  // What every node will be started with, checked once here: a node's start-up error (e.g. a bus
  // that cannot hold history and no --history) stops the command before anything starts, and
  // per-node history is refused for a cluster (it breaks a chat across nodes).
  const serve = loadServeConfig(['--bus', bus, ...serveArgs]);
  checkClusterHistory(serve.history, serve.bus, nodeCount);
  const haproxy = findHaproxy();

  const nodes: ChildProcess[] = [];
  let proxy: ChildProcess | undefined;
  let stopping = false;
  const dir = mkdtempSync(join(tmpdir(), 'fanout-cluster-'));
  const exitOf = (c: ChildProcess): Promise<unknown> => (c.exitCode !== null || c.signalCode !== null ? Promise.resolve() : new Promise((r) => c.once('exit', r)));
  /**
   * Ctrl-C in a terminal signals the whole foreground process group; the nodes and HAProxy run in
   * groups of their own (detached), so only this process hears it and each node gets exactly
   * one SIGTERM: it drains (clients closed with 1001, spread over --drain-timeout), then HAProxy
   * stops. A second Ctrl-C stops everything at once.
   */
  const stop = (code: number) => {
    if (stopping) {
      for (const child of [...nodes, proxy]) child?.kill('SIGKILL');
      process.exit(code);
    }
    stopping = true;
    process.stdout.write(`fanout cluster: stopping: draining ${nodes.length} node(s) (Ctrl-C again to stop at once)\n`);
    for (const child of nodes) child.kill('SIGTERM');
    const deadline = setTimeout(() => {
      for (const child of [...nodes, proxy]) child?.kill('SIGKILL');
    }, 30_000);
    deadline.unref();
    void Promise.all(nodes.map(exitOf)).then(async () => {
      proxy?.kill('SIGTERM');
      if (proxy) await exitOf(proxy);
      rmSync(dir, { recursive: true, force: true });
      process.stdout.write('fanout cluster: stopped\n');
      process.exit(code);
    });
  };
  process.on('SIGINT', () => stop(0));
  process.on('SIGTERM', () => stop(0));
  // Children in their own groups outlive an abrupt exit of this process unless told.
  process.on('exit', () => {
    for (const child of [...nodes, proxy]) if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });

  const ports: number[] = [];
  for (let i = 1; i <= nodeCount; i++) {
    const nodeId = `node${i}`;
    const child = fork(MAIN, ['serve', '--port', String(options.nodePorts?.[i - 1] ?? 0), '--host', '127.0.0.1', '--node-id', nodeId, '--bus', bus, '--trust-proxy', trustedProxy(options.source), ...serveArgs], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      detached: true,
    });
    nodes.push(child);
    ports.push(await listeningPort(child, nodeId));
    child.on('exit', (code, signal) => {
      if (!stopping) process.stderr.write(`fanout cluster: ${nodeId} exited (${signal ?? code}); HAProxy routes around it\n`);
    });
  }

  const cfg = haproxyConfig({
    servers: ports.map((port) => ({ host: '127.0.0.1', port })),
    port: options.port,
    host: '0.0.0.0',
    balance: options.balance,
    maxconn: options.maxconn,
    checkInterval: HAPROXY_DEFAULTS.checkInterval,
    statsPort: options.statsPort,
    source: options.source,
  });
  const cfgFile = join(dir, 'haproxy.cfg');
  writeFileSync(cfgFile, cfg);
  proxy = spawn(haproxy, ['-db', '-f', cfgFile], { stdio: ['ignore', 'inherit', 'inherit'], detached: true });
  proxy.on('exit', (code, signal) => {
    if (!stopping) {
      process.stderr.write(`fanout cluster: haproxy exited (${signal ?? code}); stopping\n`);
      stop(1);
    }
  });
  process.stdout.write(
    `Fanout cluster: ${nodeCount} node(s) on ${ports.map((p) => `127.0.0.1:${p}`).join(', ')}, bus ${serve.bus.describe}, history ${serve.history.describe}\n` +
      `HAProxy config: ${cfgFile}\n` +
      `Open http://localhost:${options.port}/ws (Ctrl-C stops the cluster)\n`,
  );
}

/** The address the nodes see HAProxy connect from: --source (unbracketed), else loopback. */
function trustedProxy(source: string | undefined): string {
  return source === undefined ? '127.0.0.1' : source.replace(/^\[(.*)\]$/, '$1');
}

/** How many nodes: --nodes, or one per --node-ports port; both given, they must agree. */
function clusterSize(nodes: number | undefined, ports: readonly number[] | undefined, proxyPort: number): number {
  if (ports?.includes(proxyPort)) throw new ConfigError('--node-ports', `expected ports other than HAProxy's --port ${proxyPort}`);
  if (nodes === undefined && ports === undefined) throw new ConfigError('--nodes', 'missing: give how many nodes to run (1 to 64), or their ports with --node-ports 9001,9002');
  if (nodes !== undefined && ports !== undefined && ports.length !== nodes) {
    throw new ConfigError('--node-ports', `expected one port per node: --nodes ${nodes} and ${ports.length} port(s)`);
  }
  const count = nodes ?? ports!.length;
  if (count > 64) throw new ConfigError('--node-ports', 'expected 1 to 64 nodes');
  return count;
}

function listeningPort(child: ChildProcess, nodeId: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const onExit = (code: number | null) => reject(new FanoutError('FANOUT_ERR_CLUSTER_NODE', `${nodeId} exited (${code}) before listening`));
    child.once('exit', onExit);
    child.on('message', (msg: { type?: string; port?: number }) => {
      if (msg?.type === 'listening' && typeof msg.port === 'number') {
        child.off('exit', onExit);
        resolve(msg.port);
      }
    });
  });
}

function findHaproxy(): string {
  const found = spawnSync('haproxy', ['-v'], { stdio: 'ignore' });
  if (found.error || found.status !== 0) {
    throw new FanoutError(
      'FANOUT_ERR_HAPROXY_MISSING',
      'haproxy was not found on PATH; install it (Debian/Ubuntu: apt-get install haproxy)',
    );
  }
  return 'haproxy';
}
