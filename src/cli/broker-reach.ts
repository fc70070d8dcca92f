/**
 * Is anything listening where the bus (and a separate history store) should be? `fanout cluster`
 * asks before it starts a node: a node comes up without its broker (it retries for ever, /readyz
 * 503, HAProxy's fallback serves pages that cannot subscribe), so without this check a laptop
 * with no Redis gets a URL to open and a page that says "connected" but cannot chat.
 *
 * A TCP connection to the broker's address is the question asked, the same for every broker:
 * it answers "nobody is there" (the common case: the broker is not started) in milliseconds.
 * Whatever comes after the connection (credentials, JetStream, topics) the nodes check
 * themselves, and the cluster waits for their /readyz before it starts HAProxy.
 */
import { connect } from 'node:net';
import type { BusAddress } from '../config/bus-address.js';
import type { HistoryTarget } from '../config/history-target.js';
import { ConfigError } from '../errors.js';

/** How long one address may take to accept a connection before it counts as unreachable. */
export const REACH_TIMEOUT_MS = 3000;

interface Endpoint {
  readonly host: string;
  readonly port: number;
}

/** What to start for each broker, for the fix the line suggests. */
const START: Readonly<Record<string, string>> = {
  redis: 'start redis-server',
  'redis-cluster': 'start the Redis Cluster',
  nats: 'start nats-server -js',
  amqp: 'start RabbitMQ (rabbitmq-server)',
  kafka: 'start Kafka',
};

/**
 * Resolves when the bus, and the history store when it is another broker, accept a TCP
 * connection (any one of their addresses: clients discover the rest); otherwise throws one
 * ConfigError naming the flag, where nothing answered and why, and the fix.
 * `busDefaulted`: the bus is the cluster's default, not one the user gave.
 */
export async function checkBrokersReachable(bus: BusAddress, history: HistoryTarget, busDefaulted: boolean): Promise<void> {
  const checks: Array<Promise<void>> = [];
  if (bus.kind !== 'memory') {
    const why = busDefaulted ? ', the default bus of a cluster of 2+ nodes' : '';
    checks.push(reach('--bus', bus.kind, bus.describe, busEndpoints(bus), why));
  }
  if (history.kind !== 'memory' && !history.sameAsBus) {
    const kind = history.kind;
    const endpoints = kind === 'redis' ? [urlEndpoint(history.url, 6379)] : busEndpoints(history.address);
    checks.push(reach('--history', kind, history.describe, endpoints, ''));
  }
  // Both are asked at once; the bus's answer comes first when both are missing.
  const results = await Promise.allSettled(checks);
  for (const r of results) if (r.status === 'rejected') throw r.reason;
}

/** The addresses a bus connects to first. */
function busEndpoints(bus: Exclude<BusAddress, { kind: 'memory' }>): Endpoint[] {
  switch (bus.kind) {
    case 'redis':
      return [urlEndpoint(bus.url, 6379)];
    case 'redis-cluster':
      return bus.nodes.map((n) => ({ host: n.host, port: n.port }));
    case 'nats':
      return bus.servers.map((s) => urlEndpoint(s, 4222));
    case 'amqp':
      return [urlEndpoint(bus.url, /^amqps:/i.test(bus.url) ? 5671 : 5672)];
    case 'kafka':
      return bus.brokers.map((b) => urlEndpoint(`kafka://${b}`, 9092));
  }
}

function urlEndpoint(url: string, defaultPort: number): Endpoint {
  const parsed = new URL(url);
  return { host: parsed.hostname.replace(/^\[(.*)\]$/, '$1'), port: parsed.port === '' ? defaultPort : Number(parsed.port) };
}

async function reach(flag: string, kind: string, describe: string, endpoints: readonly Endpoint[], why: string): Promise<void> {
  const results = await Promise.allSettled(endpoints.map(tcpConnect));
  if (results.some((r) => r.status === 'fulfilled')) return;
  const causes = results.map((r) => (r.status === 'rejected' ? String((r.reason as Error).message) : '')).join('; ');
  throw new ConfigError(
    flag,
    `nothing answers at ${describe}${why} (${causes}); ${START[kind] ?? 'start the broker'}, or pass ${flag} with the URL of a running one`,
  );
}

/** Opens and closes one TCP connection; rejects with the address and the cause (`connect ECONNREFUSED 127.0.0.1:6379`). */
function tcpConnect({ host, port }: Endpoint): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port });
    socket.setTimeout(REACH_TIMEOUT_MS, () => {
      socket.destroy();
      reject(new Error(`no answer from ${host}:${port} within ${REACH_TIMEOUT_MS / 1000} s`));
    });
    socket.once('connect', () => {
      socket.destroy();
      resolve();
    });
    socket.once('error', (err: NodeJS.ErrnoException) => {
      socket.destroy();
      // Node's message names the address for a refusal (`connect ECONNREFUSED 127.0.0.1:6379`)
      // but only the host for a name it could not resolve (`getaddrinfo ENOTFOUND nohost`).
      reject(new Error(err.message.includes(String(port)) ? err.message : `${err.message} (${host}:${port})`));
    });
  });
}
