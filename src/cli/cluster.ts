/**
 * `fanout cluster`: N nodes on free ports plus HAProxy in front of them, from the generated
 * config, until Ctrl-C. For development, demos, tests and the benchmark.
 *
 * Start-up, in order: the flags (serve flags before `--` too, cluster-args.ts), the nodes' config
 * checked once, the brokers reachable (broker-reach.ts), the nodes started and each one's /readyz
 * awaited, then HAProxy, then the URL: a URL it prints is one that serves a working chat. The
 * children's lines are copied with `[node1] `, `[haproxy] ` in front (cluster-children.ts).
 */
import { fork, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CLUSTER_HELP, clusterSchema } from '../config/commands.js';
import { checkClusterHistory, clusterHistoryMissing, HistoryMissingError } from '../config/history-target.js';
import { loadServeConfig, parseCommand } from '../config/load.js';
import { ConfigError, FanoutError } from '../errors.js';
import { HAPROXY_DEFAULTS, haproxyConfig } from '../haproxy/config.js';
import { checkBrokersReachable } from './broker-reach.js';
import { splitClusterArgs } from './cluster-args.js';
import { adopt, running, untilReady, type Child } from './cluster-children.js';

const MAIN = fileURLToPath(new URL('./main.js', import.meta.url));
const DEFAULT_CLUSTER_BUS = 'redis://127.0.0.1:6379';
/** How long the cluster waits for a node's /readyz before it starts HAProxy anyway. */
const READY_WAIT_MS = 30_000;
const say = (line: string) => process.stdout.write(`fanout cluster: ${line}\n`);

export async function clusterCommand(argv: readonly string[]): Promise<void> {
  const { own, serve: serveArgs } = splitClusterArgs(argv);
  if (own.includes('--help')) {
    process.stdout.write(CLUSTER_HELP + '\n');
    return;
  }
  const { options, positionals } = parseCommand(clusterSchema, own);
  if (positionals.length > 0) throw new ConfigError(positionals[0]!, 'unexpected argument (every option is a --flag; see fanout cluster --help)');
  const nodeCount = clusterSize(options.nodes, options.nodePorts, options.port);
  const bus = options.bus ?? (nodeCount > 1 ? DEFAULT_CLUSTER_BUS : 'memory');
  if (bus === 'memory' && nodeCount > 1) {
    throw new ConfigError('--bus', 'the memory bus lives in one process; nodes of a cluster need a broker (redis://…)');
  }
  // What every node will be started with, checked once here: a node's start-up error (e.g. a bus
  // that cannot hold history and no --history) stops the command before anything starts, and
  // per-node history is refused for a cluster (it breaks a chat across nodes).
  let serve: ReturnType<typeof loadServeConfig>;
  try {
    serve = loadServeConfig(['--bus', bus, ...serveArgs]);
  } catch (err) {
    throw err instanceof HistoryMissingError && nodeCount > 1 ? clusterHistoryMissing(err) : err;
  }
  checkClusterHistory(serve.history, serve.bus, nodeCount);
  const haproxy = findHaproxy();
  await checkBrokersReachable(serve.bus, serve.history, options.bus === undefined);

  const nodes: Child[] = [];
  let proxy: Child | undefined;
  let stopping = false;
  const dir = mkdtempSync(join(tmpdir(), 'fanout-cluster-'));
  const processes = (): ChildProcess[] => [...nodes, ...(proxy ? [proxy] : [])].map((c) => c.process);
  /**
   * Ctrl-C in a terminal signals the whole foreground process group; the nodes and HAProxy run in
   * groups of their own (detached), so only this process hears it and each running node gets
   * exactly one SIGTERM: it drains (clients closed with 1001, spread over --drain-timeout), then
   * HAProxy stops. A second Ctrl-C stops everything at once.
   */
  const stop = (code: number) => {
    if (stopping) {
      for (const child of processes()) child.kill('SIGKILL');
      process.exit(code);
    }
    stopping = true;
    const alive = nodes.filter(running);
    say(
      alive.length > 0
        ? `stopping: draining ${alive.length} node(s) (Ctrl-C again to stop at once)`
        : `stopping: ${nodes.length > 0 ? 'no node is running' : 'no node was started'}${proxy && running(proxy) ? '; stopping HAProxy' : ''}`,
    );
    for (const node of alive) node.process.kill('SIGTERM');
    const deadline = setTimeout(() => {
      for (const child of processes()) child.kill('SIGKILL');
    }, 30_000);
    deadline.unref();
    void Promise.all(nodes.map((n) => n.closed)).then(async () => {
      if (proxy) {
        proxy.process.kill('SIGTERM');
        await proxy.closed;
      }
      rmSync(dir, { recursive: true, force: true });
      say('stopped');
      process.exit(code);
    });
  };
  process.on('SIGINT', () => stop(0));
  process.on('SIGTERM', () => stop(0));
  // Children in their own groups outlive an abrupt exit of this process unless told.
  process.on('exit', () => {
    for (const child of processes()) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });

  const ports: number[] = [];
  for (let i = 1; i <= nodeCount; i++) {
    const nodeId = `node${i}`;
    // The nodes' stdout is a pipe here: --log-format auto gets the pretty lines a terminal would.
    const format = serve.logFormat === 'auto' && process.stdout.isTTY ? ['--log-format', 'pretty'] : [];
    const args = ['serve', '--port', String(options.nodePorts?.[i - 1] ?? 0), '--host', '127.0.0.1', '--node-id', nodeId, '--bus', bus, '--trust-proxy', trustedProxy(options.source), ...format, ...serveArgs];
    const child = adopt(nodeId, fork(MAIN, args, { stdio: ['ignore', 'pipe', 'pipe', 'ipc'], detached: true }), process);
    nodes.push(child);
    ports.push(await listeningPort(child));
    child.process.on('exit', (code, signal) => {
      // Before HAProxy starts, the start-up's own error says it (untilReady, listeningPort).
      if (!stopping && proxy) process.stderr.write(`fanout cluster: ${nodeId} exited (${signal ?? code}); HAProxy routes around it\n`);
    });
  }
  // HAProxy starts once every node is ready (serving, its bus connected), so its first checks
  // find them UP and the URL printed below serves a working chat at once.
  const ready = await Promise.all(nodes.map((node, i) => untilReady(node, ports[i]!, READY_WAIT_MS)));
  const late = nodes.filter((_, i) => !ready[i]).map((n) => n.name);
  if (late.length > 0) {
    process.stderr.write(
      `fanout cluster: ${late.join(', ')} not ready after ${READY_WAIT_MS / 1000} s (their /readyz answers 503: the bus is not connected; their lines above say why); starting HAProxy anyway, which shows them DOWN until they are ready\n`,
    );
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
  proxy = adopt('haproxy', spawn(haproxy, ['-db', '-f', cfgFile], { stdio: ['ignore', 'pipe', 'pipe'], detached: true }), process);
  proxy.process.on('exit', (code, signal) => {
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

/** The port a node listens on, from its `listening` message; rejects when it exits first. */
function listeningPort(child: Child): Promise<number> {
  return new Promise((resolve, reject) => {
    // On `close`, not `exit`: its last lines (why it stopped) are copied before the error is printed.
    void child.closed.then(() => reject(new FanoutError('FANOUT_ERR_CLUSTER_NODE', `${child.name} exited (${child.process.exitCode ?? child.process.signalCode}) before listening`)));
    child.process.on('message', (msg: { type?: string; port?: number }) => {
      if (msg?.type === 'listening' && typeof msg.port === 'number') resolve(msg.port);
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
