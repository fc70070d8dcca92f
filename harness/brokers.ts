/**
 * Broker processes of our own on free loopback ports: a redis-server, a nats-server or a small
 * Redis Cluster, for the benchmark (which runs Fanout over each and counts their CPU) and for
 * tests that stop and restart a broker, so that a restart never disturbs the shared brokers on
 * the default ports other tests use. Each can be stopped (crash or clean) and started again on
 * the same port with the same state directory. Plus the machine's RabbitMQ node, restarted with
 * rabbitmqctl (too heavy to start per test).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { captureOutput, isRunning, stopChild } from './child.js';
import { freePort } from './ports.js';
import { Changes, until } from './wait.js';

const run = promisify(execFile);

/** What redis-server and nats-server log once they accept connections. */
export const REDIS_READY = /Ready to accept connections/;
export const NATS_READY = /Server is ready/;

export interface BrokerProcessOptions {
  /** The broker's URL, e.g. `redis://127.0.0.1:PORT`. */
  readonly url: string;
  /** The log line that says it is ready; start() waits for it. */
  readonly ready: RegExp;
  /** A directory of its state, removed by {@link BrokerProcess.destroy}. */
  readonly dir?: string;
  /** How long start() waits for the ready line (default 15 s). */
  readonly timeoutMs?: number;
}

/** One broker process that can be stopped and started again with the same arguments. */
export class BrokerProcess {
  private child: ChildProcess | undefined;
  private output: () => string = () => '';
  readonly url: string;

  constructor(
    readonly name: string,
    readonly port: number,
    private readonly command: string,
    private readonly args: readonly string[],
    private readonly options: BrokerProcessOptions,
  ) {
    this.url = options.url;
  }

  get running(): boolean {
    return this.child !== undefined;
  }

  /** The process id while running (the benchmark counts its CPU). */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Starts the process (no-op when running) and waits for its ready line in its log. */
  async start(): Promise<void> {
    if (this.child) return;
    const child = spawn(this.command, this.args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const changes = new Changes();
    let ready = false;
    let pending = '';
    const output = captureOutput(child, {
      limit: 8000,
      onChunk: (text) => {
        // Lines may arrive split over chunks: test what is left of the last line with the new text.
        const lines = (pending + text).split('\n');
        pending = lines.pop() ?? '';
        if (lines.some((l) => this.options.ready.test(l)) || this.options.ready.test(pending)) ready = true;
        changes.notify();
      },
    });
    child.once('exit', () => changes.notify());
    child.once('error', () => changes.notify());
    this.child = child;
    this.output = output;
    try {
      await until(() => ready, {
        wake: changes,
        timeoutMs: this.options.timeoutMs ?? 15_000,
        what: `${this.name} on ${this.port} to log ${this.options.ready}`,
        abort: () => (isRunning(child) ? undefined : `${this.name} exited (${child.exitCode ?? child.signalCode ?? 'not started'})`),
        detail: () => output(),
      });
    } catch (err) {
      await this.stop('SIGKILL');
      throw err;
    }
  }

  /** What the process wrote lately (the last 8000 characters). */
  log(): string {
    return this.output();
  }

  /** Stops the process and waits for the exit: SIGKILL plays a crash, SIGTERM (the default) a clean shutdown. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.child = undefined;
    await stopChild(child, signal);
  }

  /** Stops the process (a crash: SIGKILL) and removes its state directory. */
  async destroy(): Promise<void> {
    await this.stop('SIGKILL');
    if (this.options.dir) rmSync(this.options.dir, { recursive: true, force: true });
  }
}

/**
 * A redis-server of our own on a free port. Without persistence by default; with
 * `persistent: true`, an append-only file fsynced on every write in a temporary directory, so a
 * crash and restart keeps every acknowledged write. `args` are more redis-server flags (e.g.
 * `--requirepass P`).
 */
export async function startRedisServer(options: { persistent?: boolean; args?: readonly string[] } = {}): Promise<BrokerProcess> {
  const port = await freePort();
  const dir = options.persistent ? mkdtempSync(join(tmpdir(), 'fanout-redis-')) : undefined;
  const persistence = dir ? ['--dir', dir, '--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no'];
  const proc = new BrokerProcess('redis-server', port, 'redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', ...persistence, ...(options.args ?? [])], {
    url: `redis://127.0.0.1:${port}`,
    ready: REDIS_READY,
    ...(dir ? { dir } : {}),
  });
  await proc.start();
  return proc;
}

/** A nats-server of our own (core NATS only); `extraArgs` e.g. `--user u --pass p`. */
export async function startNatsServer(extraArgs: readonly string[] = []): Promise<BrokerProcess> {
  const port = await freePort();
  const proc = new BrokerProcess('nats-server', port, 'nats-server', ['-a', '127.0.0.1', '-p', String(port), ...extraArgs], {
    url: `nats://127.0.0.1:${port}`,
    ready: NATS_READY,
  });
  await proc.start();
  return proc;
}

/** `redis-cli -p PORT …`, its output; '' when the node does not answer. */
function redisCli(port: number, ...args: string[]): Promise<string> {
  return run('redis-cli', ['-p', String(port), ...args]).then(
    (r) => r.stdout,
    () => '',
  );
}

/** A Redis Cluster of redis-server processes on loopback: `masters` masters with `replicas` replicas each. */
export class RedisClusterProcesses {
  private constructor(
    readonly nodes: readonly BrokerProcess[],
    private readonly dir: string,
  ) {}

  /** The running nodes' process ids. */
  get pids(): number[] {
    return this.nodes.flatMap((n) => (n.pid === undefined ? [] : [n.pid]));
  }

  /** `redis-cluster://127.0.0.1:p1,127.0.0.1:p2,…` */
  get url(): string {
    return `redis-cluster://${this.nodes.map((n) => `127.0.0.1:${n.port}`).join(',')}`;
  }

  static async start(masters = 3, replicas = 0): Promise<RedisClusterProcesses> {
    const dir = mkdtempSync(join(tmpdir(), 'fanout-redis-cluster-'));
    const nodes: BrokerProcess[] = [];
    for (let i = 0; i < masters * (1 + replicas); i++) {
      const port = await freePort();
      // --cluster-port: the bus port would be port+10000, which may be taken or past 65535.
      const busPort = await freePort();
      // One directory per node: a replica's full sync writes an RDB file there.
      const nodeDir = join(dir, String(port));
      mkdirSync(nodeDir);
      nodes.push(
        new BrokerProcess(
          `redis cluster node ${i + 1}`,
          port,
          'redis-server',
          [
            '--port', String(port), '--bind', '127.0.0.1', '--cluster-enabled', 'yes', '--cluster-port', String(busPort),
            '--cluster-config-file', join(nodeDir, 'nodes.conf'), '--cluster-node-timeout', '2000',
            '--dir', nodeDir, '--save', '', '--appendonly', 'no',
            // Replicas sync at once (the default waits 5 s); a replica that never synced cannot fail over.
            '--repl-diskless-sync-delay', '0',
          ],
          { url: `redis://127.0.0.1:${port}`, ready: REDIS_READY },
        ),
      );
    }
    const cluster = new RedisClusterProcesses(nodes, dir);
    try {
      await Promise.all(nodes.map((n) => n.start()));
      await run('redis-cli', [
        '--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', String(replicas), '--cluster-yes',
      ]);
      await cluster.waitHealthy();
      if (replicas > 0) await cluster.waitReplicasSynced();
    } catch (err) {
      await cluster.stop();
      throw err;
    }
    return cluster;
  }

  /** Waits until every running node says cluster_state:ok and knows every node (Redis has no event for it: polls CLUSTER INFO). */
  async waitHealthy(timeoutMs = 20_000): Promise<void> {
    let states: string[] = [];
    await until(
      async () => {
        states = await Promise.all(this.nodes.filter((n) => n.running).map((n) => redisCli(n.port, 'cluster', 'info')));
        return states.every((s) => s.includes('cluster_state:ok') && s.includes(`cluster_known_nodes:${this.nodes.length}`));
      },
      { timeoutMs, intervalMs: 100, what: 'the redis cluster to be healthy', detail: () => states.join(' | ') },
    );
  }

  /** Waits until every replica has finished its sync with its master (polls INFO replication). */
  async waitReplicasSynced(timeoutMs = 20_000): Promise<void> {
    await until(
      async () => {
        const infos = await Promise.all(this.nodes.map((n) => redisCli(n.port, 'info', 'replication')));
        const replicas = infos.filter((i) => i.includes('role:slave'));
        return replicas.length > 0 && replicas.every((i) => i.includes('master_link_status:up'));
      },
      { timeoutMs, intervalMs: 100, what: 'the redis cluster replicas to sync' },
    );
  }

  /** Stops every node (the broker is down); {@link restart} brings the same cluster back. */
  async down(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.stop(signal)));
  }

  /** Starts every node again from its nodes.conf and waits for the cluster to be healthy. */
  async restart(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.start()));
    await this.waitHealthy();
  }

  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.stop('SIGTERM')));
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * The machine's RabbitMQ node: a restart of its application (`rabbitmqctl stop_app` /
 * `start_app`, about a second each) is a real broker restart. Only the bus conformance suite may
 * use it: it disturbs everyone on that node.
 */
export const systemRabbit = {
  async stop(): Promise<void> {
    await run('rabbitmqctl', ['stop_app'], { timeout: 60_000 });
  },
  async start(): Promise<void> {
    await run('rabbitmqctl', ['start_app'], { timeout: 60_000 });
    await run('rabbitmqctl', ['await_startup'], { timeout: 60_000 });
  },
};
