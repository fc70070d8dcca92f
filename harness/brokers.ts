/**
 * Broker processes of our own on free loopback ports: a redis-server, a nats-server or a small
 * Redis Cluster, shared by the tests and the benchmark. The benchmark runs Fanout over each;
 * tests that stop and restart a broker use them so that a restart never disturbs the shared
 * brokers other tests use. Each can be stopped
 * (crash or clean) and started again on the same port with the same state directory.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './ports.js';

const run = promisify(execFile);

/** Resolves once something accepts TCP connections on 127.0.0.1:`port`. */
export async function waitPort(port: number, timeoutMs = 15_000, what = `port ${port}`): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = tcpConnect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (open) return;
    if (Date.now() > deadline) throw new Error(`${what} did not come up`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** One broker process that can be stopped and started again with the same arguments. */
export class BrokerProcess {
  private child: ChildProcess | undefined;
  private output = '';

  constructor(
    readonly name: string,
    readonly port: number,
    private readonly command: string,
    private readonly args: readonly string[],
  ) {}

  get running(): boolean {
    return this.child !== undefined;
  }

  /** The process id while running (the benchmark counts its CPU). */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  async start(): Promise<void> {
    if (this.child) return;
    const child = spawn(this.command, this.args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.on('data', (d: Buffer) => (this.output = (this.output + d.toString()).slice(-4000)));
    child.stderr!.on('data', (d: Buffer) => (this.output = (this.output + d.toString()).slice(-4000)));
    child.on('error', (err) => (this.output += `\n${err.message}`));
    this.child = child;
    try {
      await waitPort(this.port, 15_000, `${this.name} on ${this.port}`);
    } catch (err) {
      throw new Error(`${(err as Error).message}: ${this.output}`);
    }
  }

  /** Stops the process: SIGKILL plays a crash, SIGTERM a clean shutdown. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.child = undefined;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }
}

/** A redis-server of our own, no persistence. */
export async function startRedisServer(): Promise<BrokerProcess> {
  const port = await freePort();
  const proc = new BrokerProcess('redis-server', port, 'redis-server', [
    '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
  ]);
  await proc.start();
  return proc;
}

/** A nats-server of our own (core NATS only). */
export async function startNatsServer(): Promise<BrokerProcess> {
  const port = await freePort();
  const proc = new BrokerProcess('nats-server', port, 'nats-server', ['-a', '127.0.0.1', '-p', String(port)]);
  await proc.start();
  return proc;
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
        new BrokerProcess(`redis cluster node ${i + 1}`, port, 'redis-server', [
          '--port', String(port), '--bind', '127.0.0.1', '--cluster-enabled', 'yes', '--cluster-port', String(busPort),
          '--cluster-config-file', join(nodeDir, 'nodes.conf'), '--cluster-node-timeout', '2000',
          '--dir', nodeDir, '--save', '', '--appendonly', 'no',
          // Replicas sync at once (the default waits 5 s); a replica that never synced cannot fail over.
          '--repl-diskless-sync-delay', '0',
        ]),
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

  /** Waits until every running node says cluster_state:ok and knows every node. */
  async waitHealthy(timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const states = await Promise.all(
        this.nodes.filter((n) => n.running).map((n) =>
          run('redis-cli', ['-p', String(n.port), 'cluster', 'info'])
            .then((r) => r.stdout)
            .catch(() => ''),
        ),
      );
      if (states.every((s) => s.includes('cluster_state:ok') && s.includes(`cluster_known_nodes:${this.nodes.length}`))) return;
      if (Date.now() > deadline) throw new Error(`redis cluster not healthy: ${states.join(' | ')}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Waits until every replica has finished its sync with its master. */
  async waitReplicasSynced(timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const infos = await Promise.all(
        this.nodes.map((n) =>
          run('redis-cli', ['-p', String(n.port), 'info', 'replication'])
            .then((r) => r.stdout)
            .catch(() => ''),
        ),
      );
      const replicas = infos.filter((i) => i.includes('role:slave'));
      if (replicas.length > 0 && replicas.every((i) => i.includes('master_link_status:up'))) return;
      if (Date.now() > deadline) throw new Error('redis cluster replicas did not sync');
      await new Promise((r) => setTimeout(r, 100));
    }
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

/** Process ids whose command name (/proc/PID/comm) is `name`. */
export function processesNamed(name: string): number[] {
  return readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry))
    .filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === name;
      } catch {
        return false; // gone since the listing
      }
    })
    .map(Number);
}
