/** `fanout cluster` as a child process, for the tests that run whole clusters (cli, kafka-bus). */
import { spawn, type ChildProcess } from 'node:child_process';
import { captureOutput, exited } from '../../harness/child.js';
import { FANOUT_MAIN } from '../../harness/fanout-process.js';
import { Changes, until } from '../../harness/wait.js';

/**
 * `fanout cluster ARGS` in its own process group, as a terminal's foreground job (Ctrl-C signals
 * the whole group): the child, its output so far (waiters are woken on each chunk) and its exit.
 */
export function spawnCluster(args: readonly string[]) {
  const child = spawn(process.execPath, [FANOUT_MAIN, 'cluster', ...args], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const changes = new Changes();
  const out = captureOutput(child, { onChunk: () => changes.notify() });
  return { child, out: Object.assign(out, { changes }), exit: exited(child) };
}

/** Waits until the cluster printed the URL to open (HAProxy on `port`), or fails when it exited first. */
export function untilUrlPrinted(child: ChildProcess, out: (() => string) & { changes: Changes }, port: number): Promise<void> {
  return until(() => out().includes(`Open http://localhost:${port}/ws `), {
    wake: out.changes,
    timeoutMs: 15_000,
    what: 'the URL to be printed',
    abort: () => (child.exitCode === null ? undefined : `fanout cluster exited (${child.exitCode})`),
    detail: out,
  });
}

/** Waits until GET /ws answers 200 through the cluster's HAProxy on `port` (its first checks of the nodes are not on its output). */
export function untilPageServed(port: number): Promise<void> {
  return until(
    async () => {
      const page = await fetch(`http://127.0.0.1:${port}/ws`);
      await page.arrayBuffer();
      return page.status === 200;
    },
    { timeoutMs: 15_000, intervalMs: 100, what: 'the page served through the cluster' },
  );
}
