/** In-process nodes for tests (several on one memory broker); real `fanout serve` processes are in harness/fanout-process.ts. */
import { randomBytes } from 'node:crypto';
import { MemoryBroker } from '../../src/brokers/memory/bus.js';
import { createConfig } from '../../src/config/load.js';
import type { serveSchema } from '../../src/config/schema.js';
import { createNode, type FanoutNode } from '../../src/app.js';
import type { z } from 'zod';
import { until } from '../../harness/wait.js';

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

/** Waits until every in-process node is ready (its bus connected); the node has no event for it, so this polls. */
export async function waitNodesReady(nodes: readonly FanoutNode[], timeoutMs = 10_000): Promise<void> {
  await until(() => nodes.every((n) => n.ready), { timeoutMs, what: 'the nodes to (re)connect to their bus' });
}
