/**
 * The subscribers of a fault run, in one process started inside a client network namespace
 * (`ip netns exec … node faults-client.js`): each system's own client library with its own best
 * recovery, counting what each subscriber's app would see. Driven over IPC by bench/faults.ts:
 * argv[2] is a {@link FaultClientSpec} in JSON; it sends `ready` once every client is subscribed,
 * `progress` every second, and its {@link FaultClientReport} when asked (`report`), then exits.
 */
import { WebSocket } from 'ws';
import { io } from 'socket.io-client';
import { FanoutClient } from '../client/index.js';

/** The systems of a fault run. */
export const FAULT_SYSTEMS = ['fanout', 'socketio', 'seed'] as const;
export type FaultSystem = (typeof FAULT_SYSTEMS)[number];

export interface FaultClientSpec {
  readonly system: FaultSystem;
  /** Where the clients connect (through the delaying proxy): ws://host:port (the path is the system's). */
  readonly origin: string;
  readonly clients: number;
  /** Fanout: the channel every client subscribes to. */
  readonly channel: string;
}

/** What the clients of one process saw, summed over them. */
export interface FaultClientReport {
  readonly clients: number;
  /** Distinct messages delivered, over all clients. */
  readonly delivered: number;
  /** Messages a client had seen already. */
  readonly duplicates: number;
  /** Messages older than one the client had seen before (duplicates not counted). */
  readonly outOfOrder: number;
  /** Times a client connected again after its first connection. */
  readonly reconnects: number;
  /** Fanout: resubscriptions the server could not recover (the app would reload). */
  readonly unrecovered: number;
  /** Publish-to-arrival ms of every message that arrived (first copies), 0.1 ms resolution. */
  readonly latencies: number[];
  /** Each client's distinct messages and its connection state at the end, in client order. */
  readonly perClient: { readonly delivered: number; readonly state: string; readonly highest: number; readonly reconnects: number }[];
}

/** Wall-clock ms with sub-ms precision, comparable across this machine's processes. */
export const nowMs = (): number => performance.timeOrigin + performance.now();

/** One message as the publisher sends it: its sequence number and its send time. */
export interface Stamp {
  readonly s: number;
  readonly t: number;
}

class Tally {
  private readonly seen = new Set<number>();
  highest = -1;
  delivered = 0;
  duplicates = 0;
  outOfOrder = 0;

  constructor(private readonly latencies: number[]) {}

  add(stamp: Stamp): void {
    if (this.seen.has(stamp.s)) {
      this.duplicates++;
      return;
    }
    this.seen.add(stamp.s);
    this.delivered++;
    if (stamp.s < this.highest) this.outOfOrder++;
    else this.highest = stamp.s;
    this.latencies.push(Math.round((nowMs() - stamp.t) * 10) / 10);
  }
}

interface Subscriber {
  readonly tally: Tally;
  /** The connection's state as the client library names it. */
  state(): string;
  reconnects: number;
  unrecovered: number;
  close(): void;
}

function fanoutSubscriber(spec: FaultClientSpec, tally: Tally, ready: () => void): Subscriber {
  const client = new FanoutClient({ url: `${spec.origin}/ws/v1`, WebSocket: WebSocket as never });
  const sub: Subscriber = { tally, reconnects: 0, unrecovered: 0, close: () => client.close(), state: () => `${client.state}/${subscription.state} on ${node}` };
  let connections = 0;
  let node = '';
  client.on('connected', (info) => {
    if (connections++ > 0) sub.reconnects++;
    node = info.node.slice(info.node.lastIndexOf('-') + 1);
  });
  // The SDK resubscribes with `since` on every reconnect; `unrecovered` says the gap could not be filled.
  const subscription = client.subscribe<Stamp>(spec.channel, {
    onMessage: (data) => tally.add(data),
    onUnrecovered: () => sub.unrecovered++,
  });
  subscription.once('subscribed', ready);
  client.connect();
  return sub;
}

function socketioSubscriber(spec: FaultClientSpec, tally: Tally, ready: () => void): Subscriber {
  const socket = io(spec.origin, { transports: ['websocket'] });
  const sub: Subscriber = { tally, reconnects: 0, unrecovered: 0, close: () => socket.close(), state: () => (socket.connected ? 'connected' : 'disconnected') };
  let connections = 0;
  socket.on('connect', () => {
    if (connections++ > 0) sub.reconnects++;
    // Connection state recovery replays what was missed; `recovered` false is a fresh session.
    if (connections > 1 && !socket.recovered) sub.unrecovered++;
    if (connections === 1) ready();
  });
  socket.on('message', (data: Stamp) => tally.add(data));
  return sub;
}

/** The seed page's logic: a plain WebSocket that opens again a second after it closes, nothing recovered. */
function seedSubscriber(spec: FaultClientSpec, tally: Tally, ready: () => void): Subscriber {
  let closed = false;
  let connections = 0;
  let socket: WebSocket;
  const sub: Subscriber = {
    tally,
    reconnects: 0,
    unrecovered: 0,
    state: () => ['connecting', 'open', 'closing', 'closed'][socket.readyState]!,
    close: () => {
      closed = true;
      socket.terminate();
    },
  };
  const open = () => {
    socket = new WebSocket(`${spec.origin}/ws/echo`);
    socket.on('open', () => {
      // The seed page recovers nothing: every reconnect leaves a gap if anything was sent meanwhile.
      if (connections++ > 0) [sub.reconnects, sub.unrecovered] = [sub.reconnects + 1, sub.unrecovered + 1];
      if (connections === 1) ready();
    });
    socket.on('message', (raw) => {
      const text = raw.toString();
      if (text.startsWith('Received: {')) tally.add(JSON.parse(text.slice('Received: '.length)) as Stamp);
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      if (!closed) setTimeout(open, 1000);
    });
  };
  open();
  return sub;
}

const MAKERS = { fanout: fanoutSubscriber, socketio: socketioSubscriber, seed: seedSubscriber } as const;

function main(): void {
  const spec = JSON.parse(process.argv[2]!) as FaultClientSpec;
  const latencies: number[] = [];
  let readyCount = 0;
  const subscribers: Subscriber[] = [];
  const ready = () => {
    if (++readyCount === spec.clients) process.send!({ type: 'ready' });
  };
  // Opened a few at a time, as pages would: not all in one turn of the event loop.
  let opened = 0;
  const openSome = () => {
    for (let i = 0; i < 25 && opened < spec.clients; i++, opened++) subscribers.push(MAKERS[spec.system](spec, new Tally(latencies), ready));
    if (opened < spec.clients) setTimeout(openSome, 10);
  };
  openSome();
  const sum = (f: (s: Subscriber) => number) => subscribers.reduce((n, s) => n + f(s), 0);
  const progress = setInterval(() => process.send!({ type: 'progress', delivered: sum((s) => s.tally.delivered) }), 1000);
  process.on('message', (msg: { type?: string }) => {
    if (msg?.type !== 'report') return;
    clearInterval(progress);
    const report: FaultClientReport = {
      clients: subscribers.length,
      delivered: sum((s) => s.tally.delivered),
      duplicates: sum((s) => s.tally.duplicates),
      outOfOrder: sum((s) => s.tally.outOfOrder),
      reconnects: sum((s) => s.reconnects),
      unrecovered: sum((s) => s.unrecovered),
      latencies,
      perClient: subscribers.map((s) => ({ delivered: s.tally.delivered, state: s.state(), highest: s.tally.highest, reconnects: s.reconnects })),
    };
    for (const s of subscribers) s.close();
    process.send!({ type: 'report', report }, () => process.exit(0));
  });
  process.on('disconnect', () => process.exit(0));
}

if (process.send && process.argv[2]) main();
