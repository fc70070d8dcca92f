/**
 * Which transport the client uses (docs/client.md, "Transports"): the WebSocket first; the SSE
 * transport (client/sse-socket.ts) when the WebSocket fails to open twice in a row or closes with
 * 1006 before `connected` (a proxy that strips `Upgrade` or cuts the socket); the WebSocket again
 * after {@link RETRY_WEBSOCKET_MS} on SSE. `transports` limits the choice (`['sse']`: SSE only).
 */
import { SseSocket } from './sse-socket.js';
import type { WebSocketConstructor } from './transport.js';

export type TransportName = 'websocket' | 'sse';

/** The default of `transports`. */
export const DEFAULT_TRANSPORTS: readonly TransportName[] = Object.freeze(['websocket', 'sse']);
/** Time on SSE before the client tries the WebSocket again. */
export const RETRY_WEBSOCKET_MS = 60_000;
/** Failed WebSocket openings in a row that move the client to SSE. */
export const WEBSOCKET_FAILURES = 2;

/** Checks the `transports` option. */
export function transportsOption(given: readonly TransportName[] | undefined): readonly TransportName[] {
  if (given === undefined) return DEFAULT_TRANSPORTS;
  if (!Array.isArray(given) || given.length === 0 || given.some((t) => t !== 'websocket' && t !== 'sse')) {
    throw new TypeError(`transports: expected a non-empty array of 'websocket' and 'sse', got ${JSON.stringify(given)}`);
  }
  return Object.freeze([...new Set(given)]);
}

export class TransportChoice {
  current: TransportName;
  private failures = 0;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;

  /** `retryWebSocket` is called when the time on SSE is up (the client then reconnects over the WebSocket). */
  constructor(
    private readonly allowed: readonly TransportName[],
    private readonly retryWebSocket: () => void,
  ) {
    this.current = allowed[0]!;
  }

  /** The constructor of the current transport's socket: SSE's, or undefined for the WebSocket. */
  sseConstructor(): WebSocketConstructor | undefined {
    return this.current === 'sse' ? SseSocket : undefined;
  }

  /** True while on the WebSocket with SSE allowed. */
  canFallBack(): boolean {
    return this.current === 'websocket' && this.allowed.includes('sse');
  }

  /** A connection reached `connected`. */
  connected(): void {
    if (this.current === 'websocket') this.failures = 0;
  }

  /** A connection over the WebSocket ended before `connected`: `opened` says whether it opened. True when the client moved to SSE. */
  failedBeforeConnected(opened: boolean, code: number): boolean {
    if (this.current !== 'websocket' || !this.allowed.includes('sse')) return false;
    if (!opened) this.failures++;
    if (opened ? code !== 1006 : this.failures < WEBSOCKET_FAILURES) return false;
    this.current = 'sse';
    this.failures = 0;
    if (this.allowed.includes('websocket')) {
      this.retryTimer = setTimeout(() => {
        this.retryTimer = undefined;
        this.current = 'websocket';
        this.retryWebSocket();
      }, RETRY_WEBSOCKET_MS);
      (this.retryTimer as { unref?: () => void }).unref?.();
    }
    return true;
  }

  stop(): void {
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
  }
}
