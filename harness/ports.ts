/** Free loopback ports, and waiting for a port to answer. */
import { connect, createServer } from 'node:net';
import { until } from './wait.js';

/** Ports this process handed out lately: the kernel may offer one again before its taker listens. */
const handedOut = new Set<number>();
const HANDED_OUT_KEPT = 2000;

function listenOnAny(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/**
 * A free TCP port on 127.0.0.1, for processes that cannot listen on port 0 and report back
 * (redis-server, nats-server, HAProxy) or that must come back on the same port after a restart.
 * Never one this process handed out among its last {@link HANDED_OUT_KEPT}: a port is only
 * taken once its process listens, and until then the kernel may offer it again (a Redis Cluster
 * start asks for six in a row, and once got the same port twice).
 */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = await listenOnAny();
    if (handedOut.has(port)) continue;
    handedOut.add(port);
    if (handedOut.size > HANDED_OUT_KEPT) handedOut.delete(handedOut.values().next().value!);
    return port;
  }
}

/** True when something accepts a TCP connection on `host`:`port` now. */
export function portAnswers(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, host);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/**
 * Resolves once something accepts TCP connections on `host`:`port`. For a process we did not
 * start (there is no event to wait on); our own processes say when they are ready.
 */
export function waitPort(port: number, options: { timeoutMs?: number; what?: string; host?: string } = {}): Promise<void> {
  return until(() => portAnswers(port, options.host), { timeoutMs: options.timeoutMs ?? 15_000, intervalMs: 50, what: options.what ?? `port ${port} to answer` });
}
