/** A real HAProxy started from the config `fanout haproxy-config` generates. */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HAPROXY_DEFAULTS, haproxyConfig, type HaproxyOptions } from '../../src/haproxy/config.js';

export { freePort } from '../../harness/ports.js';
import { freePort } from '../../harness/ports.js';

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

export interface RunningHaproxy {
  readonly port: number;
  readonly child: ChildProcess;
  readonly config: string;
  readonly output: () => string;
  stop(): Promise<void>;
}

/** Starts HAProxy in front of `ports` (on 127.0.0.1) and waits until it accepts connections. */
export async function startHaproxy(ports: readonly number[], options: Partial<HaproxyOptions> = {}): Promise<RunningHaproxy> {
  const port = options.port ?? (await freePort());
  const config = haproxyConfig({
    servers: ports.map((p) => ({ host: '127.0.0.1', port: p })),
    port,
    host: '127.0.0.1',
    balance: HAPROXY_DEFAULTS.balance,
    maxconn: 4000,
    checkInterval: 500,
    ...options,
  });
  const dir = mkdtempSync(join(tmpdir(), 'fanout-haproxy-'));
  const file = join(dir, 'haproxy.cfg');
  writeFileSync(file, config);
  const child = spawn('haproxy', ['-db', '-f', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`haproxy exited: ${output}`);
    try {
      if ((await probe(port, options.tlsCert !== undefined)) === 200) break;
    } catch {
      /* not up yet */
    }
    if (Date.now() > deadline) throw new Error(`haproxy did not come up: ${output}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    port,
    child,
    config,
    output: () => output,
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
