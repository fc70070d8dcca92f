/**
 * The systems of the fault run, each behind HAProxy with a publisher of its own kind, and a way to
 * SIGKILL one node and have it started again on the same port (as a supervisor would):
 * - Fanout: 2 nodes on the bench's Redis (bus and channel history), the channel path /ws/v1, the
 *   SDK publishing on the channel;
 * - Socket.IO 4: 2 nodes with connection state recovery and @socket.io/redis-streams-adapter,
 *   socket.io-client publishing;
 * - the seed server: 1 express-ws node (it has no fan-out between nodes), a plain WebSocket
 *   publishing that queues while its socket is down.
 * The publisher is the back end: it connects to a node directly, from this namespace, and the
 * killed node is never its node when there is another one.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WebSocket } from 'ws';
import { io, type Socket } from 'socket.io-client';
import { FanoutClient, type Subscription } from '../client/index.js';
import { forkFanoutServe, forkListening, waitReadyPort, type ServerProcess } from '../harness/fanout-process.js';
import { startHaproxy, type RunningHaproxy } from '../harness/haproxy.js';
import { freePort } from '../harness/ports.js';
import { untilEvent } from '../harness/wait.js';
import type { FaultSystem, Stamp } from './faults-client.js';

export const FAULT_SYSTEM_LABELS: Record<FaultSystem, string> = {
  fanout: 'Fanout + SDK, recovery with `since` (channels /ws/v1, 2 nodes, Redis)',
  socketio: 'Socket.IO 4, connection state recovery, @socket.io/redis-streams-adapter (2 nodes)',
  seed: 'express-ws seed, page reconnects after 1 s (1 node)',
};

/** Messages Fanout keeps per channel for recovery: more than a 5 s cut plus the reconnect at 20 msg/s. */
export const FAULT_HISTORY_SIZE = 2000;
/** The channel of the Fanout run. */
export const FAULT_CHANNEL = 'faults';

const PEERS = fileURLToPath(new URL('../../bench/peers/', import.meta.url));

export interface Publisher {
  /** Sends one message; a publish the system refused or lost on the way counts in {@link failures}. */
  publish(stamp: Stamp): void;
  readonly failures: number;
  close(): Promise<void>;
}

export interface FaultSystemHandle {
  readonly name: FaultSystem;
  /** HAProxy's port on 127.0.0.1. */
  readonly port: number;
  readonly publisher: Publisher;
  /** SIGKILLs one node (not the publisher's when there is another) and starts it again `restartAfterMs` later on its port. */
  killNode(restartAfterMs: number): Promise<void>;
  stop(): Promise<void>;
}

async function fanoutPublisher(port: number): Promise<Publisher> {
  const client = new FanoutClient({ url: `ws://127.0.0.1:${port}/ws/v1`, WebSocket: WebSocket as never });
  const sub: Subscription<Stamp> = client.subscribe<Stamp>(FAULT_CHANNEL);
  const subscribed = new Promise<void>((resolve) => sub.once('subscribed', () => resolve()));
  client.connect();
  await subscribed;
  let failures = 0;
  return {
    publish: (stamp) => void sub.publish(stamp).catch(() => failures++),
    get failures() {
      return failures;
    },
    close: async () => client.close(),
  };
}

async function socketioPublisher(port: number): Promise<Publisher> {
  const socket: Socket = io(`ws://127.0.0.1:${port}`, { transports: ['websocket'] });
  await untilEvent(socket as never, 'connect', { timeoutMs: 10_000, what: 'the Socket.IO publisher to connect' });
  // socket.io-client buffers emits while disconnected and sends them on reconnect.
  return { publish: (stamp) => void socket.emit('message', stamp), failures: 0, close: async () => void socket.close() };
}

/** A plain WebSocket that reconnects after a second and sends what it queued meanwhile (a back end would). */
async function seedPublisher(port: number): Promise<Publisher> {
  const queue: string[] = [];
  let socket: WebSocket;
  let closed = false;
  const flush = () => {
    while (queue.length > 0 && socket.readyState === WebSocket.OPEN) socket.send(queue.shift()!);
  };
  const open = () => {
    socket = new WebSocket(`ws://127.0.0.1:${port}/ws/echo`);
    socket.on('open', flush);
    socket.on('error', () => {});
    socket.on('close', () => {
      if (!closed) setTimeout(open, 1000);
    });
  };
  open();
  await untilEvent(socket! as never, 'open', { timeoutMs: 10_000, what: 'the seed publisher to connect' });
  return {
    publish: (stamp) => {
      queue.push(JSON.stringify(stamp));
      flush();
    },
    failures: 0,
    close: async () => {
      closed = true;
      socket.terminate();
    },
  };
}

/** Starts `name` on the Redis at `redisUrl` behind one HAProxy, with its publisher connected. */
export async function startFaultSystem(name: FaultSystem, redisUrl: string): Promise<FaultSystemHandle> {
  const prefix = `faults-${randomBytes(4).toString('hex')}`;
  const count = name === 'seed' ? 1 : 2;
  const ports = await Promise.all(Array.from({ length: count }, () => freePort()));
  const fork = { passThrough: true, timeoutMs: 20_000 };
  const startNode = async (i: number): Promise<ServerProcess> => {
    const port = String(ports[i]);
    if (name === 'fanout') {
      const node = await forkFanoutServe(
        ['--port', port, '--bus', redisUrl, '--bus-prefix', prefix, '--node-id', `${prefix}-n${i + 1}`, '--history-size', String(FAULT_HISTORY_SIZE), '--rate-limit', '0', '--rate-limit-bytes', '0', '--drain-delay', '0', '--drain-timeout', '0'],
        fork,
      );
      await waitReadyPort(ports[i]!, 30_000);
      return node;
    }
    if (name === 'socketio') return forkListening(join(PEERS, 'socketio-recovery.cjs'), [], { ...fork, env: { PORT: port, REDIS_URL: redisUrl, PREFIX: prefix } });
    return forkListening(join(PEERS, 'express-ws.cjs'), [], { ...fork, env: { PORT: port } });
  };
  const nodes: ServerProcess[] = [];
  let haproxy: RunningHaproxy | undefined;
  let publisher: Publisher | undefined;
  const restarts = new Set<Promise<void>>();
  const stop = async () => {
    await Promise.allSettled(restarts);
    await publisher?.close();
    await haproxy?.stop();
    await Promise.all(nodes.map((n) => n.stop()));
  };
  try {
    for (let i = 0; i < count; i++) nodes.push(await startNode(i));
    haproxy = await startHaproxy(ports, { checkInterval: 500 });
    publisher = name === 'fanout' ? await fanoutPublisher(ports[0]!) : name === 'socketio' ? await socketioPublisher(ports[0]!) : await seedPublisher(ports[0]!);
  } catch (err) {
    await stop();
    throw err;
  }
  const victim = count - 1;
  return {
    name,
    port: haproxy.port,
    publisher,
    killNode: async (restartAfterMs) => {
      await nodes[victim]!.stop('SIGKILL');
      const restart = new Promise<void>((resolve) => setTimeout(resolve, restartAfterMs)).then(async () => {
        nodes[victim] = await startNode(victim);
      });
      restarts.add(restart);
      void restart.catch((err: unknown) => process.stderr.write(`bench: ${name} node ${victim + 1} did not start again: ${(err as Error).message}\n`));
    },
    stop,
  };
}
