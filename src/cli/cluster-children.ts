/**
 * The processes `fanout cluster` runs (its nodes and HAProxy): their output, line by line with
 * the process's name in front (`[node1] {"level":30,…}`, `[haproxy] [WARNING] …`), so the lines
 * of several processes on one terminal can be told apart and filtered; and their readiness.
 */
import type { ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import { FanoutError } from '../errors.js';

/** A process the cluster started, by the name its lines carry. */
export interface Child {
  readonly name: string;
  readonly process: ChildProcess;
  /** Resolves once the process exited and all its output was written (its `close`). */
  readonly closed: Promise<void>;
}

/** True while the process has not exited. */
export function running(child: Child): boolean {
  return child.process.exitCode === null && child.process.signalCode === null;
}

/**
 * Names a started process and copies its stdout and stderr to ours, each line prefixed with
 * `[name] `. A last line without a newline is copied when the stream ends.
 */
export function adopt(name: string, process: ChildProcess, out: { stdout: Writable; stderr: Writable }): Child {
  const copy = (from: Readable | null, to: Writable) => {
    if (!from) return;
    createInterface({ input: from, crlfDelay: Infinity }).on('line', (line) => to.write(`[${name}] ${line}\n`));
  };
  copy(process.stdout, out.stdout);
  copy(process.stderr, out.stderr);
  const closed = new Promise<void>((resolve) => process.once('close', () => resolve()));
  return { name, process, closed };
}

/** How often a node's /readyz is asked while the cluster waits for it. */
const READY_POLL_MS = 200;

/**
 * Resolves `true` once the node on `port` answers GET /readyz with 200 (it serves and its bus is
 * connected), `false` after `timeoutMs` without that, and rejects when the node exits first.
 */
export async function untilReady(child: Child, port: number, timeoutMs: number): Promise<boolean> {
  let exited = false;
  void child.closed.then(() => (exited = true));
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (exited || !running(child)) throw new FanoutError('FANOUT_ERR_CLUSTER_NODE', `${child.name} exited (${child.process.exitCode ?? child.process.signalCode}) before it was ready`);
    try {
      const res = await fetch(`http://127.0.0.1:${port}/readyz`, { signal: AbortSignal.timeout(2000) });
      await res.arrayBuffer();
      if (res.status === 200) return true;
    } catch {
      // Not answering yet (or just exited): asked again below.
    }
    if (Date.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, READY_POLL_MS));
  }
}
