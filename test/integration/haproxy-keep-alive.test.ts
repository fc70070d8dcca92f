/**
 * A back end that calls the HTTP API every few seconds over keep-alive connections never sees a
 * request fail because the server side closed the idle connection just as the client reused it
 * (ECONNRESET, "socket hang up": a publish the back end believes failed and may send again).
 *
 * Real parts: a `fanout serve` node, a real HAProxy from the generated config, Node's HTTP agent
 * as `http.globalAgent` is configured, fetch (undici), and an agent made with only
 * `{ keepAlive: true }` (no idle timeout of its own, ignores the server's hint). Each client sends
 * `POST /api/publish`, waits an idle gap, and sends again on the connection it kept; the gaps are
 * spread around the old server-side timeouts: 4.8–5.2 s through HAProxy (`timeout http-keep-alive
 * 5s`), 5.8–6.2 s to the node (keepAliveTimeout 5 s, closed 1 s later by Node 20).
 *
 * The clients reach HAProxy and the node through a link with 25 ms of latency each way (a back end
 * in another zone): the race's window is as wide as the latency (a request already on its way when
 * the server closes), well under a millisecond on loopback (0 of 120 tries failed there). On the
 * old timeouts 8 to 10 of each 120 tries through HAProxy (default agent, bare agent) and to the
 * node (bare agent) failed in this set-up. fetch (4 s idle) did not fail at 5 s: its sweep guards
 * the announced timeout, which undici trusts up to 1 s before it. The sweeps run at once, ~35 s.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, test } from 'node:test';
import { forkFanoutServe, type ServerProcess } from '../../harness/fanout-process.js';
import { type RunningHaproxy, startHaproxy } from '../../harness/haproxy.js';
import { sleep } from '../../harness/wait.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';

const API_KEY = 'keep-alive-key';
/** Parallel connections per sweep, each with its own pool, and the idle gaps each one waits. */
const LANES = 24;
const ROUNDS = 5;
/** One-way latency of the link between the back end and HAProxy or the node. */
const LATENCY_MS = 25;

/** A client as a back end would use it: sends one publish, resolves 'ok' or what went wrong. */
type Client = { send(port: number): Promise<string>; close(): Promise<void> };

const body = JSON.stringify({ channel: 'orders', data: { n: 1 } });
const headers = { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' };

/** Node's HTTP client on `agent`. */
function agentClient(agent: http.Agent): Client {
  return {
    send: (port) =>
      new Promise((resolve) => {
        const req = http.request({ agent, host: '127.0.0.1', port, path: '/api/publish', method: 'POST', headers }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode === 200 ? 'ok' : `status ${res.statusCode}`));
        });
        req.on('error', (err: NodeJS.ErrnoException) => resolve(`${err.code ?? ''} ${err.message}`));
        req.end(body);
      }),
    close: async () => {
      if (agent !== http.globalAgent) agent.destroy();
    },
  };
}

/**
 * fetch with a connection pool of its own: a new instance of the class of fetch's global
 * dispatcher (undici's Agent, with fetch's defaults), so each lane keeps its own connection.
 */
function fetchClient(): Client {
  type Dispatcher = { close(): Promise<void> };
  const global = (globalThis as Record<symbol, Dispatcher | undefined>)[Symbol.for('undici.globalDispatcher.1')];
  assert.ok(global, 'fetch has a global dispatcher once it has been used');
  const dispatcher = new (global.constructor as new () => Dispatcher)();
  return {
    send: async (port) => {
      try {
        const res = await fetch(`http://127.0.0.1:${port}/api/publish`, { method: 'POST', headers, body, dispatcher } as RequestInit);
        await res.arrayBuffer();
        return res.status === 200 ? 'ok' : `status ${res.status}`;
      } catch (err) {
        const cause = (err as { cause?: NodeJS.ErrnoException }).cause;
        return `${cause?.code ?? ''} ${(err as Error).message} ${cause?.message ?? ''}`;
      }
    },
    close: () => dispatcher.close(),
  };
}

interface Sweep {
  readonly tries: number;
  /** `gap ms: error` for every request that failed after an idle gap. */
  readonly failures: readonly string[];
}

/**
 * LANES clients, each sending a first request then ROUNDS more, each after an idle gap; the gaps
 * are spread evenly over [low, high] ms and shuffled across lanes and rounds.
 */
async function sweep(port: number, makeClient: (lane: number) => Client, low: number, high: number): Promise<Sweep> {
  const failures: string[] = [];
  const n = LANES * ROUNDS;
  await Promise.all(
    Array.from({ length: LANES }, async (_, lane) => {
      const client = makeClient(lane);
      try {
        await sleep(lane * 40); // staggered, so the lanes do not all send in the same instant
        const first = await client.send(port);
        assert.equal(first, 'ok', 'the first request of a lane, on a new connection');
        for (let round = 0; round < ROUNDS; round++) {
          const gap = low + ((high - low) * (((round * LANES + lane) * 7919) % n)) / (n - 1);
          await sleep(gap);
          const result = await client.send(port);
          if (result !== 'ok') failures.push(`${Math.round(gap)} ms: ${result}`);
        }
      } finally {
        await client.close();
      }
    }),
  );
  return { tries: n, failures };
}

let node: ServerProcess;
let proxy: RunningHaproxy;
let links: TcpProxy[] = [];
let sweeps: Record<string, Promise<Sweep>>;

before(async () => {
  node = await forkFanoutServe(['--api-key', API_KEY]);
  proxy = await startHaproxy([node.port]); // it answered fetch: fetch's global dispatcher exists
  const [toHaproxy, toNode] = (links = await Promise.all([TcpProxy.start(proxy.port), TcpProxy.start(node.port)]));
  for (const link of links) link.latency(LATENCY_MS);
  // Made as http.globalAgent is (keepAlive, 5 s idle timeout, lifo), from its own options (Node keeps
  // them on the agent, untyped); lane 0 uses http.globalAgent itself.
  const globalOptions = (http.globalAgent as http.Agent & { options: http.AgentOptions }).options;
  assert.equal(globalOptions.keepAlive, true);
  const defaultAgent = (lane: number) => agentClient(lane === 0 ? http.globalAgent : new http.Agent(globalOptions));
  const bareAgent = () => agentClient(new http.Agent({ keepAlive: true }));
  // All at once: the test takes as long as one sweep.
  sweeps = {
    haproxyDefault: sweep(toHaproxy!.port, defaultAgent, 4800, 5200),
    haproxyFetch: sweep(toHaproxy!.port, fetchClient, 4800, 5200),
    haproxyBare: sweep(toHaproxy!.port, bareAgent, 4800, 5200),
    nodeBare: sweep(toNode!.port, bareAgent, 5800, 6200),
  };
  // A sweep that throws fails its own test below, not the hook.
  for (const s of Object.values(sweeps)) s.catch(() => {});
});

after(async () => {
  if (sweeps) await Promise.allSettled(Object.values(sweeps));
  await Promise.all(links.map((l) => l.close()));
  await proxy?.stop();
  await node?.stop();
});

/** Every request after an idle gap was answered. */
async function assertNoneFailed(name: string): Promise<void> {
  const { tries, failures } = await sweeps[name]!;
  assert.equal(tries, LANES * ROUNDS);
  assert.deepEqual(failures, [], `${failures.length} of ${tries} requests failed after an idle gap`);
}

test('through HAProxy, a back end on Node’s default agent publishing every 4.8–5.2 s sees every request answered', () =>
  assertNoneFailed('haproxyDefault'));

test('through HAProxy, a back end using fetch publishing every 4.8–5.2 s sees every request answered', () => assertNoneFailed('haproxyFetch'));

test('through HAProxy, a back end on an agent with no idle timeout publishing every 4.8–5.2 s sees every request answered', () =>
  assertNoneFailed('haproxyBare'));

test('straight to a node, a back end on an agent with no idle timeout publishing every 5.8–6.2 s sees every request answered', () =>
  assertNoneFailed('nodeBare'));

test('HAProxy announces its idle timeout and the node its own, both longer than Node’s and undici’s idle timeouts', async () => {
  for (const port of [proxy.port, node.port]) {
    const res = await fetch(`http://127.0.0.1:${port}/api/publish`, { method: 'POST', headers, body });
    await res.arrayBuffer();
    assert.equal(res.status, 200);
    const announced = Number(/^timeout=(\d+)/.exec(res.headers.get('keep-alive') ?? '')?.[1]);
    // A client that honours the hint closes 1 s before it; Node's default agent closes at 5 s anyway.
    assert.ok(announced - 1 > 5, `port ${port} announces Keep-Alive: ${res.headers.get('keep-alive')}`);
  }
});
