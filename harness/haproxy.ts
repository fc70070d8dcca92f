/** A real HAProxy started from the config `fanout haproxy-config` generates (src/haproxy/config.ts). */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HAPROXY_DEFAULTS, haproxyConfig, type HaproxyOptions } from '../src/haproxy/config.js';
import { captureOutput, isRunning, stopChild } from './child.js';
import { freePort } from './ports.js';
import { Changes, until } from './wait.js';

/** The HAProxy binary; FANOUT_HAPROXY overrides it. */
export const HAPROXY = process.env.FANOUT_HAPROXY ?? 'haproxy';

/** Defaults for a test or benchmark HAProxy: loopback, a free port, checks every 500 ms. */
export const TEST_HAPROXY_DEFAULTS = {
  host: '127.0.0.1',
  balance: HAPROXY_DEFAULTS.balance,
  maxconn: 4000,
  checkInterval: 500,
} as const;

export interface RunningHaproxy {
  readonly port: number;
  readonly child: ChildProcess;
  readonly pid: number;
  /** The haproxy.cfg it runs. */
  readonly config: string;
  readonly output: () => string;
  /**
   * Each server's state as HAProxy last reported it ("Server fanout_ws/node1 is DOWN, …" on its
   * output), keyed `backend/server`; servers not reported yet are not in the map (HAProxy starts them UP).
   */
  readonly servers: ReadonlyMap<string, 'UP' | 'DOWN'>;
  /**
   * Resolves once HAProxy has reported every one of `servers` (`backend/server`, e.g.
   * `fanout_ws/node3`; server n is the n-th port given) in `state`: waits on its log, not on a timer.
   */
  untilServers(servers: readonly string[], state: 'UP' | 'DOWN', timeoutMs?: number): Promise<void>;
  /** Stops it (SIGTERM), waits for the exit and removes its config. */
  stop(): Promise<void>;
}

/** GET /healthz through HAProxy (over TLS, certificate unchecked, when it terminates TLS). */
async function probe(port: number, tls: boolean): Promise<number> {
  if (!tls) {
    const res = await fetch(`http://127.0.0.1:${port}/healthz`);
    await res.arrayBuffer();
    return res.status;
  }
  const { get } = await import('node:https');
  return new Promise((resolve, reject) => {
    const req = get({ host: '127.0.0.1', port, path: '/healthz', rejectUnauthorized: false }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
  });
}

/**
 * Starts HAProxy in front of `ports` (on 127.0.0.1) and resolves once GET /healthz through it
 * answers 200, i.e. it listens and a health check has found a server up. HAProxy says neither on
 * its output, so this one waits by probing.
 */
export async function startHaproxy(
  ports: readonly number[],
  options: Partial<HaproxyOptions> & { timeoutMs?: number; frontendRules?: readonly string[] } = {},
): Promise<RunningHaproxy> {
  const { timeoutMs = 10_000, frontendRules = [], ...overrides } = options;
  const port = overrides.port ?? (await freePort());
  const generated = haproxyConfig({
    servers: ports.map((p) => ({ host: '127.0.0.1', port: p })),
    ...TEST_HAPROXY_DEFAULTS,
    ...overrides,
    port,
  });
  // A test config: lines put at the top of the frontend's rules (e.g. a proxy that refuses WebSockets).
  const config = frontendRules.length === 0 ? generated : generated.replace(/^(frontend fanout\n(?: {4}bind .*\n)+)/m, (head) => head + frontendRules.map((r) => `    ${r}\n`).join(''));
  const dir = mkdtempSync(join(tmpdir(), 'fanout-haproxy-'));
  const file = join(dir, 'haproxy.cfg');
  writeFileSync(file, config);
  const child = spawn(HAPROXY, ['-db', '-f', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  const servers = new Map<string, 'UP' | 'DOWN'>();
  const changes = new Changes();
  let pending = '';
  const output = captureOutput(child, {
    onChunk: (text) => {
      const lines = (pending + text).split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) {
        const m = /Server (\S+) is (UP|DOWN)\b/.exec(line);
        if (m) servers.set(m[1]!, m[2] as 'UP' | 'DOWN');
      }
      changes.notify();
    },
  });
  const untilServers = (names: readonly string[], state: 'UP' | 'DOWN', timeoutMs = 10_000): Promise<void> =>
    until(() => names.every((n) => (servers.get(n) ?? 'UP') === state), {
      wake: changes,
      timeoutMs,
      what: `haproxy to report ${names.join(', ')} ${state}`,
      detail: () => JSON.stringify(Object.fromEntries(servers)),
    });
  const stop = async (): Promise<void> => {
    await stopChild(child);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await until(async () => (await probe(port, overrides.tlsCert !== undefined)) === 200, {
      timeoutMs,
      intervalMs: 100,
      what: `haproxy on ${port} to answer /healthz with 200`,
      abort: () => (isRunning(child) ? undefined : `haproxy exited (${child.exitCode ?? child.signalCode}): ${output()}`),
      detail: output,
    });
  } catch (err) {
    await stop();
    throw err;
  }
  return { port, child, pid: child.pid!, config, output, servers, untilServers, stop };
}
