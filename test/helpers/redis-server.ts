/**
 * A private redis-server for destructive tests (outage, restart): never the shared one on 6379.
 * Started on a free port, without persistence unless asked (then an append-only file fsynced on
 * every write, in a temporary directory); `stop()` and `start()` again keep the port and the data.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './haproxy.js';

export class RedisServer {
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();

  private readonly dir: string | undefined;

  private constructor(
    readonly port: number,
    persistent: boolean,
  ) {
    this.dir = persistent ? mkdtempSync(join(tmpdir(), 'fanout-redis-')) : undefined;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** Starts a redis-server on a free port and waits until it answers. */
  static async start(options: { persistent?: boolean } = {}): Promise<RedisServer> {
    const server = new RedisServer(await freePort(), options.persistent ?? false);
    await server.start();
    return server;
  }

  /** (Re)starts the server on its port and waits until it accepts connections. */
  async start(): Promise<void> {
    if (this.child) throw new Error('redis-server already running');
    const persistence = this.dir ? ['--dir', this.dir, '--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no'];
    const child = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', ...persistence], {
      stdio: 'ignore',
    });
    this.child = child;
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    const deadline = Date.now() + 10_000;
    while (!(await answers(this.port))) {
      if (child.exitCode !== null) throw new Error(`redis-server exited with ${child.exitCode}`);
      if (Date.now() > deadline) throw new Error('redis-server did not come up');
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Stops the server (SIGKILL by default: a crash; SIGTERM for a clean shutdown) and waits for the exit. */
  async stop(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.child = undefined;
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    await this.exited;
  }

  /** Stops the server and removes its data. */
  async destroy(): Promise<void> {
    await this.stop();
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
  }
}

function answers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.write('PING\r\n');
    });
    socket.once('data', (d: Buffer) => {
      socket.destroy();
      resolve(d.toString().startsWith('+PONG'));
    });
    socket.once('error', () => resolve(false));
  });
}
