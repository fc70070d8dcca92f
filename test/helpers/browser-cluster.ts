/**
 * What the end-to-end tests stand on: two real `fanout serve` nodes over Redis, HAProxy from the
 * generated config in front of them, and headless Chromium; `close()` stops all of it and
 * removes the nodes' Redis keys.
 */
import { Redis } from 'ioredis';
import { forkFanoutServe, type ServerProcess, waitReadyPort } from '../../harness/fanout-process.js';
import { type RunningHaproxy, startHaproxy } from '../../harness/haproxy.js';
import { REDIS_URL } from './brokers.js';
import { launchBrowser, type TestBrowser } from './browser.js';
import { uniquePrefix } from './nodes.js';

export interface BrowserCluster {
  /** The nodes; a test that restarts one puts the new process here. */
  readonly nodes: ServerProcess[];
  readonly proxy: RunningHaproxy;
  readonly browser: TestBrowser;
  /** The `fanout serve` flags of node `i` (1-based), to restart it as it was. */
  nodeArgs(i: number): string[];
  close(): Promise<void>;
}

/** Starts the cluster; `extra` adds flags to every node, and node ids are `<idPrefix>1`, `<idPrefix>2`. */
export async function startBrowserCluster(idPrefix: string, extra: readonly string[] = [], waitMs = 30_000): Promise<BrowserCluster> {
  const busPrefix = uniquePrefix(`e2e-${idPrefix}`);
  const nodeArgs = (i: number): string[] => ['--bus', REDIS_URL, '--bus-prefix', busPrefix, '--node-id', `${idPrefix}${i}`, ...extra];
  const nodes = await Promise.all([1, 2].map((i) => forkFanoutServe(nodeArgs(i))));
  await Promise.all(nodes.map((n) => waitReadyPort(n.port, waitMs)));
  const proxy = await startHaproxy(nodes.map((n) => n.port));
  const browser = await launchBrowser();
  return {
    nodes,
    proxy,
    browser,
    nodeArgs,
    async close() {
      await browser.close();
      await proxy.stop();
      await Promise.all(nodes.map((n) => n.stop()));
      const admin = new Redis(REDIS_URL);
      const keys = await admin.keys(`${busPrefix}:*`);
      if (keys.length) await admin.del(...keys);
      await admin.quit();
    },
  };
}
