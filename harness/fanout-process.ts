/**
 * Real server processes: `fanout serve` (dist/src/cli/main.js) and the benchmark's peer servers,
 * forked with an IPC channel and awaited on the `{ type: 'listening', port }` message each sends
 * once it listens (an event, no polling), with a stop that waits for the exit.
 */
import { execFile, fork, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { captureOutput, exited, isRunning, stopChild } from './child.js';
import { until, untilEvent } from './wait.js';

const runFile = promisify(execFile);

/** The compiled CLI: this file is dist/harness/fanout-process.js. */
export const FANOUT_MAIN = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));

/** How long a server may take to listen (default 15 s). */
export const LISTEN_TIMEOUT_MS = 15_000;

export interface ServerProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  /** The port it listens on, as it reported. */
  readonly port: number;
  /** The node id it reported (Fanout; the peers report none). */
  readonly id: string;
  /** Its stdout and stderr so far (stderr only when stdout is inherited). */
  readonly output: () => string;
  /** Sends SIGTERM (or `signal`), waits for the exit (SIGKILL after 5 s) and returns the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export interface ForkOptions {
  /** Added to this process's environment. */
  readonly env?: NodeJS.ProcessEnv;
  /** Node flags for the child (e.g. --cpu-prof). */
  readonly execArgv?: readonly string[];
  /** Pass the child's stdout and stderr through to ours as well as capturing them (the benchmark). */
  readonly passThrough?: boolean;
  /** Default {@link LISTEN_TIMEOUT_MS}. */
  readonly timeoutMs?: number;
}

interface ListeningMessage {
  type?: string;
  port?: number;
  node?: string;
}

/** Forks `module` with `args` and resolves once it sends `{ type: 'listening', port }`; rejects if it exits first. */
export async function forkListening(module: string, args: readonly string[], options: ForkOptions = {}): Promise<ServerProcess> {
  const child = fork(module, [...args], {
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    env: { ...process.env, ...options.env },
    execArgv: [...(options.execArgv ?? [])],
  });
  const output = captureOutput(child, {
    onChunk: options.passThrough ? (text, stream) => process[stream].write(text) : undefined,
  });
  try {
    const [msg] = await untilEvent<[ListeningMessage]>(child, 'message', {
      filter: (m) => m?.type === 'listening' && typeof m.port === 'number',
      // 'close', not 'exit': by then its output is complete, for the error message.
      failOn: ['close', 'error'],
      timeoutMs: options.timeoutMs ?? LISTEN_TIMEOUT_MS,
      what: `${module} ${args.slice(0, 1).join(' ')} to listen`,
      detail: output,
    });
    return {
      child,
      pid: child.pid!,
      port: msg.port!,
      id: msg.node ?? '',
      output,
      stop: async (signal = 'SIGTERM') => (await stopChild(child, signal)).code,
    };
  } catch (err) {
    if (isRunning(child)) await stopChild(child, 'SIGKILL');
    else await exited(child);
    throw err;
  }
}

/**
 * Runs `fanout serve` on 127.0.0.1 and a free port (port 0), logging warnings only, with `args`
 * after those defaults (a later flag wins, so `--port N` or `--log-level info` override them).
 */
export function forkFanoutServe(args: readonly string[], options: ForkOptions = {}): Promise<ServerProcess> {
  return forkListening(FANOUT_MAIN, ['serve', '--port', '0', '--host', '127.0.0.1', '--log-level', 'warn', ...args], options);
}

/**
 * Waits until the node on `port` answers GET /readyz with `status`: 200 (the default) once it
 * serves with its bus connected, 503 while its bus is away or it drains. A node says when it
 * listens, not when its readiness changes, so this polls.
 */
export function waitReadyPort(port: number, timeoutMs = 10_000, status = 200): Promise<void> {
  return until(
    async () => {
      const res = await fetch(`http://127.0.0.1:${port}/readyz`);
      await res.arrayBuffer();
      return res.status === status;
    },
    { timeoutMs, intervalMs: 50, what: `the node on ${port} to answer /readyz ${status}` },
  );
}

/** What a finished `fanout` command printed, and its exit code. */
export interface FanoutRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the compiled CLI with `args` to its end (at most 20 s), `env` added to this process's. */
export async function runFanout(args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<FanoutRun> {
  try {
    const { stdout, stderr } = await runFile(process.execPath, [FANOUT_MAIN, ...args], { env: { ...process.env, ...env }, timeout: 20_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}
