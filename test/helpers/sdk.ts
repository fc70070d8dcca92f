/** Helpers for tests of the client SDK against real nodes. */
import { WebSocket } from 'ws';
import type { FanoutClient, Subscription, WebSocketConstructor } from '../../client/index.js';
import type { Json } from '../../src/protocol/frames.js';
import { until } from '../../harness/wait.js';

/** What a subscription delivered to the app, in delivery order. */
export interface Received {
  readonly offset: number;
  readonly data: Json;
}

/** Records every message `sub` delivers. */
export function collect(sub: Subscription): Received[] {
  const out: Received[] = [];
  sub.on('message', (data, { offset }) => out.push({ offset, data }));
  return out;
}

/** Resolves when `client` is connected (now or later). */
export function connected(client: FanoutClient, timeoutMs = 15_000): Promise<void> {
  return until(() => client.state === 'connected', { timeoutMs, what: `client ${client.clientId ?? ''} to connect`, detail: () => `state ${client.state}` });
}

/** A URL where nothing listens: connections are refused at once. */
const NOWHERE = 'ws://127.0.0.1:1/ws/v1';

/**
 * A `ws` WebSocket class with a gate the test controls: while shut, every connection attempt goes
 * nowhere (refused), so a client stays away from the cluster for as long as the test wants.
 */
export function gatedWebSocket(): { WebSocket: WebSocketConstructor; shut(): void; open(): void; readonly attempts: number } {
  let isOpen = true;
  let attempts = 0;
  const sockets = new Set<WebSocket>();
  class Gated extends WebSocket {
    constructor(url: string) {
      super(isOpen ? url : NOWHERE);
      attempts++;
      sockets.add(this);
      this.once('close', () => sockets.delete(this));
    }
  }
  return {
    WebSocket: Gated as unknown as WebSocketConstructor,
    /** Cuts the current connection (as a network failure would) and refuses new ones. */
    shut() {
      isOpen = false;
      for (const s of sockets) s.terminate();
    },
    open() {
      isOpen = true;
    },
    get attempts() {
      return attempts;
    },
  };
}

/** Checks that `got` holds each offset once, increasing by one, from `first` to `last`. */
export function contiguous(got: readonly Received[], first: number, last: number): boolean {
  if (got.length !== last - first + 1) return false;
  return got.every((m, i) => m.offset === first + i);
}
