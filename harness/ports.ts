/** Free loopback ports, and waiting for a port to answer. */
import { readFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { until } from './wait.js';

/** Ports this process handed out lately: the kernel may offer one again before its taker listens. */
const handedOut = new Set<number>();
const HANDED_OUT_KEPT = 2000;

/**
 * The ports the kernel never picks as the source port of an outgoing connection: below and above
 * its ephemeral range (net.ipv4.ip_local_port_range, 32768–60999 by default), from 10000 up.
 */
function outsideEphemeral(): Array<[number, number]> {
  let [low, high] = [32768, 60999];
  try {
    const range = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (range.length === 2 && range.every((n) => Number.isInteger(n) && n > 0 && n < 65536) && range[0]! <= range[1]!) [low, high] = range as [number, number];
  } catch {
    // Not Linux: the default range.
  }
  return ([[10_000, low - 1], [high + 1, 65_535]] as Array<[number, number]>).filter(([a, b]) => b - a >= 1000);
}
const SPANS = outsideEphemeral();

function listenOn(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen({ port, host: '127.0.0.1', exclusive: true }, () => {
      const { port: bound } = server.address() as { port: number };
      server.close(() => resolve(bound));
    });
  });
}

/** A random port of {@link SPANS} that nothing listens on now (else one the kernel picks). */
async function candidate(): Promise<number> {
  if (SPANS.length === 0) return listenOn(0);
  for (let tries = 0; tries < 50; tries++) {
    const sizes = SPANS.map(([a, b]) => b - a + 1);
    let pick = Math.floor(Math.random() * sizes.reduce((x, y) => x + y, 0));
    let i = 0;
    while (pick >= sizes[i]!) pick -= sizes[i++]!;
    const port = SPANS[i]![0] + pick;
    if (await listenOn(port).then(() => true, () => false)) return port;
  }
  return listenOn(0);
}

/**
 * A free TCP port on 127.0.0.1, for processes that cannot listen on port 0 and report back
 * (redis-server, nats-server, HAProxy, Kafka) or that must come back on the same port after a
 * restart. Taken outside the kernel's ephemeral range: a port from port 0 is one the kernel also
 * gives outgoing connections, and between this answer and its taker's listen (seconds for a
 * Kafka broker's JVM) another test's client could take it as its source port (a private broker
 * once failed to bind its controller port so). Never one this process handed out among its last
 * {@link HANDED_OUT_KEPT}: a port is only taken once its process listens (a Redis Cluster start
 * asks for six in a row).
 */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = await candidate();
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
