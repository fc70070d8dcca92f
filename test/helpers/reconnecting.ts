/**
 * A WebSocket client that reconnects like a real one (jittered backoff) after any close, for fault
 * tests: it records every close code and every message across its connections.
 */
import { WebSocket } from 'ws';
import { Changes, until } from '../../harness/wait.js';

export class ReconnectingClient {
  /** Close codes of each connection that ended, in order. */
  readonly closeCodes: number[] = [];
  /** When each close happened (ms since the epoch). */
  readonly closeTimes: number[] = [];
  /** Every message received, over all connections. */
  readonly messages: string[] = [];
  /** Connections opened so far. */
  opens = 0;
  ws: WebSocket | undefined;
  private stopped = false;
  private readonly changes = new Changes();
  private attempt = 0;

  constructor(
    private readonly url: string,
    private readonly onOpen?: (client: ReconnectingClient) => void,
  ) {}

  /** Connects; resolves at the first open. */
  async start(): Promise<void> {
    this.open();
    await this.until(() => this.opens >= 1, 10_000, 'first open');
  }

  get isOpen(): boolean {
    return this.ws?.readyState === WebSocket.OPEN;
  }

  send(text: string): void {
    this.ws?.send(text);
  }

  private open(): void {
    if (this.stopped) return;
    const ws = new WebSocket(this.url);
    this.ws = ws;
    let opened = false;
    ws.on('open', () => {
      opened = true;
      this.attempt = 0;
      this.opens++;
      this.onOpen?.(this);
      this.changes.notify();
    });
    ws.on('message', (data: Buffer) => {
      this.messages.push(data.toString());
      this.changes.notify();
    });
    ws.on('error', () => {});
    ws.on('close', (code: number) => {
      if (opened) {
        this.closeCodes.push(code);
        this.closeTimes.push(Date.now());
      }
      this.changes.notify();
      if (this.stopped) return;
      // Jittered exponential backoff, as the SDK does: 50–150 ms, doubling, capped at 2 s.
      const delay = Math.min(2000, 50 * 2 ** this.attempt++) * (1 + Math.random());
      setTimeout(() => this.open(), delay);
    });
  }


  /** Resolves once `predicate` holds (checked on every event), or rejects after `timeoutMs`. */
  until(predicate: () => boolean, timeoutMs = 10_000, what = 'condition'): Promise<void> {
    // Also re-checked every 200 ms: a predicate may read state other than this client's.
    return until(predicate, { wake: this.changes, intervalMs: 200, timeoutMs, what, detail: () => `opens ${this.opens}, closes ${JSON.stringify(this.closeCodes)}, last ${JSON.stringify(this.messages.slice(-3))}` });
  }

  stop(): void {
    this.stopped = true;
    this.ws?.terminate();
  }
}
