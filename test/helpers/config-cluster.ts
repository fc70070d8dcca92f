/**
 * Two `fanout serve --config FILE` processes on the machine's Redis behind a real HAProxy, for the
 * tests of what a config file's namespaces do across nodes (namespaces-cluster, delta-cluster):
 * clients through HAProxy placed one on each node, and the HTTP API through HAProxy.
 */
import assert from 'node:assert/strict';
import { forkFanoutServe, type ServerProcess } from '../../harness/fanout-process.js';
import { startHaproxy, type RunningHaproxy } from '../../harness/haproxy.js';
import { REDIS_URL } from './brokers.js';
import { uniquePrefix } from './nodes.js';
import { tempDir } from './security.js';
import { closeAll, connect, type TestClient } from './ws-client.js';

export class ConfigCluster {
  /** Each client's id, from its `connected` frame. */
  readonly ids = new Map<TestClient, string>();
  private readonly clients: TestClient[] = [];

  private constructor(
    readonly nodes: readonly ServerProcess[],
    readonly proxy: RunningHaproxy,
    private readonly apiKey: string,
    private readonly cleanup: () => void,
  ) {}

  /** Starts the two nodes on `yaml` (its `api-key` is `apiKey`) under a fresh `--bus-prefix` named after `name`, and HAProxy in front. */
  static async start(name: string, yaml: string, apiKey: string): Promise<ConfigCluster> {
    const tmp = tempDir();
    const file = tmp.file('fanout.yaml', yaml);
    const flags = ['--config', file, '--bus', REDIS_URL, '--bus-prefix', uniquePrefix(name), '--drain-delay', '0'];
    const nodes = await Promise.all([1, 2].map((i) => forkFanoutServe([...flags, '--node-id', `${name}${i}`])));
    const proxy = await startHaproxy(nodes.map((n) => n.port));
    return new ConfigCluster(nodes, proxy, apiKey, () => tmp.cleanup());
  }

  /** The `/ws/v1` URL through HAProxy. */
  get url(): string {
    return `ws://127.0.0.1:${this.proxy.port}/ws/v1`;
  }

  /** Clients through HAProxy (with `?token=` when given) until one is on each node (round robin alternates them): one per node. */
  async onBothNodes(token?: string): Promise<[TestClient, TestClient]> {
    const byNode = new Map<string, TestClient>();
    for (let i = 0; i < 8 && byNode.size < 2; i++) {
      const c = await connect(token ? `${this.url}?token=${token}` : this.url);
      this.clients.push(c);
      const hello = await c.json<{ node: string; client: string }>((f) => f['type'] === 'connected');
      this.ids.set(c, hello.client);
      if (!byNode.has(hello.node)) byNode.set(hello.node, c);
    }
    assert.equal(byNode.size, 2, 'HAProxy spreads clients over both nodes');
    return [...byNode.values()] as [TestClient, TestClient];
  }

  /** `GET|POST /api/…` through HAProxy with the API key. */
  api(path: string, body?: unknown): Promise<Response> {
    return fetch(`http://127.0.0.1:${this.proxy.port}${path}`, {
      method: body === undefined ? 'GET' : 'POST',
      headers: { authorization: `Bearer ${this.apiKey}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  }

  /** `POST /api/publish`: the offset it answered (the publish must succeed). */
  async publish(channel: string, data: unknown): Promise<number> {
    const res = await this.api('/api/publish', { channel, data });
    assert.equal(res.status, 200);
    return ((await res.json()) as { offset: number }).offset;
  }

  async close(): Promise<void> {
    closeAll(this.clients);
    await this.proxy.stop();
    await Promise.all(this.nodes.map((n) => n.stop()));
    this.cleanup();
  }
}
