/** Nodes for tests: in-process (several on one memory broker) or real `fanout serve` processes. */
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { MemoryBroker } from '../../src/bus/memory.js';
import { createConfig } from '../../src/config/load.js';
import type { serveSchema } from '../../src/config/schema.js';
import { createNode, type FanoutNode } from '../../src/app.js';
import type { z } from 'zod';

export type ConfigInput = Partial<z.input<typeof serveSchema>>;

/** A unique bus prefix, so tests sharing one Redis never see each other's traffic. */
export function uniquePrefix(name = 't'): string {
  return `${name}-${randomBytes(4).toString('hex')}`;
}

/** Starts one in-process node on 127.0.0.1 and a free port. */
export async function startNode(overrides: ConfigInput = {}, broker?: MemoryBroker): Promise<FanoutNode> {
  const config = createConfig({ port: 0, host: '127.0.0.1', heartbeat: 0, drainDelay: 0, drainTimeout: 0, ...overrides });
  const node = createNode({ config, broker });
  await node.start();
  return node;
}

/** Starts `count` in-process nodes sharing one memory broker (or the given bus URL). */
export async function startNodes(count: number, overrides: ConfigInput = {}): Promise<FanoutNode[]> {
  const broker = new MemoryBroker();
  const nodes: FanoutNode[] = [];
  for (let i = 1; i <= count; i++) nodes.push(await startNode({ nodeId: `n${i}`, ...overrides }, broker));
  return nodes;
}

export function wsUrl(node: FanoutNode, path = '/ws/echo'): string {
  return `ws://127.0.0.1:${node.address.port}${path}`;
}

export function httpUrl(node: FanoutNode, path = '/'): string {
  return `http://127.0.0.1:${node.address.port}${path}`;
}

export async function closeNodes(nodes: Iterable<FanoutNode>): Promise<void> {
  await Promise.all([...nodes].map((n) => n.close()));
}

const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

/** A `fanout` process started by a test. */
export interface NodeProcess {
  readonly child: ChildProcess;
  readonly port: number;
  readonly id: string;
  readonly output: () => string;
  /** Sends SIGTERM (or `signal`) and waits for the exit. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Runs `fanout serve` as a real process on a free port and waits until it listens. */
export function spawnNode(args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<NodeProcess> {
  const child = fork(MAIN, ['serve', '--port', '0', '--host', '127.0.0.1', '--log-level', 'warn', ...args], {
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    env: { ...process.env, ...env },
  });
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`node did not start: ${output}`)), 15_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`node exited with ${code} before listening: ${output}`));
    });
    child.on('message', (msg: { type?: string; port?: number; node?: string }) => {
      if (msg?.type !== 'listening') return;
      clearTimeout(timer);
      resolve({
        child,
        port: msg.port!,
        id: msg.node!,
        output: () => output,
        stop: async (signal = 'SIGTERM') => {
          if (child.exitCode === null && child.signalCode === null) child.kill(signal);
          return exited;
        },
      });
    });
  });
}

/** Waits until the node on `port` answers /readyz with 200 (serving, its bus connected). */
export async function waitReadyPort(port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const res = await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined);
    await res?.arrayBuffer();
    if (res?.status === 200) return;
    if (Date.now() > deadline) throw new Error(`node on ${port} did not become ready`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Waits until every in-process node is ready (its bus connected). */
export async function waitNodesReady(nodes: readonly FanoutNode[], timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!nodes.every((n) => n.ready)) {
    if (Date.now() > deadline) throw new Error('nodes did not (re)connect to their bus');
    await new Promise((r) => setTimeout(r, 20));
  }
}
