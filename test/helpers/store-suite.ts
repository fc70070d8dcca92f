/**
 * The nodes and names of the store conformance suite (test/helpers/store-conformance.ts):
 * store nodes opened by a test and closed after its describe, store nodes in processes of their
 * own (to be SIGKILLed), fresh channel names and message texts.
 */
import assert from 'node:assert/strict';
import { AsyncLocalStorage } from 'node:async_hooks';
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { stopChild } from '../../harness/child.js';
import { untilEvent } from '../../harness/wait.js';
import { uniquePrefix } from './nodes.js';
import type { StoreNodeCommand } from './store-node-process.js';
import { StoreNode, type StoreSpec } from './store-nodes.js';
import { BusUnavailableError } from '../../src/errors.js';
import type { Stores } from '../../src/brokers/create-stores.js';
import type { OccupancyEvent, PresenceEntry } from '../../src/stores/store.js';

const NODE_SCRIPT = fileURLToPath(new URL('./store-node-process.js', import.meta.url));

/** Every store node open now, in the order opened. */
export const opened: StoreNode[] = [];
const children: ChildProcess[] = [];

/** Node ids are never reused: a store keeps a node's state by its id. */
let ids = 0;

/** A node id never handed out before. */
export function nodeId(spec: StoreSpec, tag = 'n'): string {
  return `${spec.prefix}-${tag}${++ids}`;
}

/**
 * The nodes and node processes of one part of the suite: a part that runs beside another closes
 * only its own ({@link scoped}). Its tests and hooks see it through the async context in which
 * node:test defined them.
 */
interface Scope {
  readonly nodes: Set<StoreNode>;
  readonly children: Set<ChildProcess>;
}
const scopes = new AsyncLocalStorage<Scope>();

/** Defines a part of the suite (`define` calls describe) whose {@link closeOpened} closes only the nodes its tests opened. */
export function scoped(define: () => void): void {
  scopes.run({ nodes: new Set(), children: new Set() }, define);
}

/** Opens `count` store nodes on `spec` (closed by {@link closeOpened}). */
export async function open(spec: StoreSpec, count: number, early?: (stores: Stores) => void): Promise<StoreNode[]> {
  const list: StoreNode[] = [];
  for (let i = 0; i < count; i++) {
    const node = await StoreNode.open(nodeId(spec), spec, early);
    opened.push(node);
    scopes.getStore()?.nodes.add(node);
    list.push(node);
  }
  return list;
}

/**
 * Closes every node opened and kills every node process; within a {@link scoped} part, those of
 * its own tests only (the other nodes stay in {@link opened}).
 */
export async function closeOpened(): Promise<void> {
  const scope = scopes.getStore();
  const nodes = scope ? opened.filter((n) => scope.nodes.has(n)) : [...opened];
  for (const n of nodes) opened.splice(opened.indexOf(n), 1);
  scope?.nodes.clear();
  const procs = scope ? children.filter((c) => scope.children.has(c)) : [...children];
  for (const c of procs) children.splice(children.indexOf(c), 1);
  scope?.children.clear();
  await Promise.all(nodes.map((n) => n.close().catch(() => {})));
  await Promise.all(procs.map((c) => stopChild(c, 'SIGKILL')));
}

let channels = 0;
/** A channel name no test used. */
export const channel = (): string => `c${++channels}-${uniquePrefix('x')}`;

/** `n` messages' JSON texts. */
export const texts = (tag: string, n: number): string[] => Array.from({ length: n }, (_, i) => JSON.stringify(`${tag}${i}`));

/** A store node in a process of its own (to be SIGKILLed), open; `send` gets its answer or throws its failure. */
export async function openChild(spec: StoreSpec): Promise<{ child: ChildProcess; send: (command: StoreNodeCommand) => Promise<unknown> }> {
  const id = nodeId(spec, 'dead');
  const child = fork(NODE_SCRIPT, [id, JSON.stringify(spec)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  children.push(child);
  scopes.getStore()?.children.add(child);
  await untilEvent(child, 'message', { timeoutMs: 30_000, what: `store node ${id} to open`, failOn: ['exit'] });
  const send = async (command: StoreNodeCommand): Promise<unknown> => {
    const reply = untilEvent<[Record<string, unknown>]>(child, 'message', { timeoutMs: 10_000, what: `${id} to answer`, failOn: ['exit'] });
    child.send(command);
    const [answer] = await reply;
    if ('failed' in answer) throw new Error(String(answer.failed));
    return answer;
  };
  return { child, send };
}

/** A presence list as `client:user` strings (`client:user:META` with a meta), sorted. */
export function entries(list: readonly PresenceEntry[]): string[] {
  return list.map((e) => `${e.client}:${e.user}${e.meta === undefined ? '' : `:${JSON.stringify(e.meta)}`}`).sort();
}

/** The crossings of `ch` among `events`, as `name[:user]` strings, sorted. */
export function crossings(events: readonly OccupancyEvent[], ch: string): string[] {
  return events.filter((e) => e.channel === ch).map((e) => `${e.name}${e.user ? `:${e.user}` : ''}`).sort();
}

/** Rejects with BusUnavailableError (what the channel layer answers `unavailable` for). */
export async function refused(call: Promise<unknown>): Promise<void> {
  await assert.rejects(call, (err: unknown) => err instanceof BusUnavailableError, 'refused with BusUnavailableError');
}
