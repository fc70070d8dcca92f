/**
 * A scripted protocol peer for the SDK's unit tests: a real `ws` server on port 0 whose replies
 * each test writes, to produce what a healthy cluster cannot be made to do on cue (replays that
 * overlap, refused recoveries, terminal close codes, silence).
 */
import type { IncomingMessage } from 'node:http';
import type { TestContext } from 'node:test';
import { WebSocketServer, type WebSocket } from 'ws';
import { FanoutClient, type ClientState } from '../../client/index.js';
import { Changes, until, untilEvent } from '../../harness/wait.js';

export type Frame = Record<string, unknown> & { type: string };

/** One server-side connection: the frames it got, and a way to answer. */
export class Peer {
  readonly frames: Frame[] = [];
  /** Every frame received, in arrival order (frames stays a to-do list for next()). */
  readonly log: Frame[] = [];
  private readonly changes = new Changes();
  constructor(readonly ws: WebSocket, readonly req: IncomingMessage) {
    ws.on('message', (data) => {
      const frame = JSON.parse(String(data)) as Frame;
      this.frames.push(frame);
      this.log.push(frame);
      this.changes.notify();
    });
    ws.on('error', () => {});
  }
  send(frame: Record<string, unknown>): void {
    this.ws.send(JSON.stringify(frame));
  }
  /** Waits for the next frame of `type` not yet taken, and takes it. */
  async next(type: string, timeoutMs = 5000): Promise<Frame> {
    const has = (): boolean => this.frames.some((f) => f.type === type);
    await until(has, { wake: this.changes, timeoutMs, what: `a ${type} frame`, detail: () => `got ${JSON.stringify(this.frames)}` });
    return this.frames.splice(this.frames.findIndex((f) => f.type === type), 1)[0]!;
  }
}

/** A scripted server: every connection becomes a Peer; `connected` is sent unless told not to, announcing `ping` when given. */
export async function scriptedServer(options: { greet?: boolean; status?: number; ping?: number } = {}) {
  const peers: Peer[] = [];
  const changes = new Changes();
  const wss = new WebSocketServer({
    port: 0,
    host: '127.0.0.1',
    verifyClient: options.status ? (_info, cb) => cb(false, options.status) : undefined,
  });
  await untilEvent(wss, 'listening', { what: 'the scripted server to listen' });
  let n = 0;
  wss.on('connection', (ws, req) => {
    const peer = new Peer(ws, req);
    peers.push(peer);
    if (options.greet !== false) peer.send({ type: 'connected', client: `c${++n}`, node: 'node-a', ...(options.ping === undefined ? {} : { ping: options.ping }) });
    changes.notify();
  });
  const port = (wss.address() as { port: number }).port;
  return {
    url: `ws://127.0.0.1:${port}/ws/v1`,
    peers,
    /** Waits until connection number `index` (0-based) exists. */
    async peer(index: number, timeoutMs = 5000): Promise<Peer> {
      await until(() => peers[index] !== undefined, { wake: changes, timeoutMs, what: `connection #${index}` });
      return peers[index]!;
    },
    close: () =>
      new Promise<void>((r) => {
        for (const p of peers) p.ws.terminate();
        wss.close(() => r());
      }),
  };
}

export const FAST = { initial: 20, max: 100, factor: 2, jitter: 0.5 };

/** A connected client on a scripted server, both closed after the test; `peer` is the server's side of the first connection. */
export async function connectedClient(t: TestContext) {
  const server = await scriptedServer();
  t.after(() => server.close());
  const client = new FanoutClient({ url: server.url, backoff: FAST });
  t.after(() => client.close());
  await client.connect();
  return { server, client, peer: await server.peer(0) };
}


/** Resolves when `client` reaches `state`. */
export function reach(client: FanoutClient, state: ClientState, timeoutMs = 5000): Promise<void> {
  if (client.state === state) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`state ${client.state}, expected ${state}`)), timeoutMs);
    const off = client.on('state', (s) => {
      if (s !== state) return;
      clearTimeout(t);
      off();
      resolve();
    });
  });
}
