/** What every child process of the tests and the benchmark needs: its output, its exit, a stop. */
import type { ChildProcess } from 'node:child_process';

/** Exit code (null when a signal ended it) and signal of a process that has exited. */
export interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** Resolves when `child` has exited (at once if it already has, or never started: no pid). */
export function exited(child: ChildProcess): Promise<Exit> {
  if (!isRunning(child)) return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
}

/** True while `child` has not exited (false when it could not be spawned). */
export function isRunning(child: ChildProcess): boolean {
  return child.pid !== undefined && child.exitCode === null && child.signalCode === null;
}

/**
 * Sends `signal` (SIGTERM by default) and waits for the exit; SIGKILL follows after `killAfterMs`
 * (default 5 s, 0 for never) so a stuck process never hangs a test.
 */
export async function stopChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM', killAfterMs = 5000): Promise<Exit> {
  if (!isRunning(child)) return exited(child);
  const exit = exited(child);
  child.kill(signal);
  const timer = killAfterMs > 0 && signal !== 'SIGKILL' ? setTimeout(() => child.kill('SIGKILL'), killAfterMs) : undefined;
  try {
    return await exit;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Collects what `child` writes to its piped stdout and stderr (the last `limit` characters) and
 * spawn errors; `onChunk` sees each chunk (to mirror it, or to wake a waiter).
 */
export function captureOutput(child: ChildProcess, options: { limit?: number; onChunk?: (text: string, stream: 'stdout' | 'stderr') => void } = {}): () => string {
  const limit = options.limit ?? 1_000_000;
  let output = '';
  const add = (text: string): void => {
    output += text;
    if (output.length > limit) output = output.slice(-limit);
  };
  for (const stream of ['stdout', 'stderr'] as const) {
    child[stream]?.on('data', (d: Buffer) => {
      const text = d.toString();
      add(text);
      options.onChunk?.(text, stream);
    });
  }
  child.on('error', (err) => add(`\n${err.message}`));
  return () => output;
}
