/**
 * A WebSocket client that reconnects like a real one (jittered backoff) after any close, for fault
 * tests: it records every close code and every message across its connections.
 */
import { WebSocket } from 'ws';

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
  private waiters: Array<() => void> = [];
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
      this.wake();
    });
    ws.on('message', (data: Buffer) => {
      this.messages.push(data.toString());
      this.wake();
    });
    ws.on('error', () => {});
    ws.on('close', (code: number) => {
      if (opened) {
        this.closeCodes.push(code);
        this.closeTimes.push(Date.now());
      }
      this.wake();
      if (this.stopped) return;
      // Jittered exponential backoff, as the SDK does: 50–150 ms, doubling, capped at 2 s.
      const delay = Math.min(2000, 50 * 2 ** this.attempt++) * (1 + Math.random());
      setTimeout(() => this.open(), delay);
    });
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  /** Resolves once `predicate` holds (checked on every event), or rejects after `timeoutMs`. */
  async until(predicate: () => boolean, timeoutMs = 10_000, what = 'condition'): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what} (opens ${this.opens}, closes ${JSON.stringify(this.closeCodes)}, last ${JSON.stringify(this.messages.slice(-3))})`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 200));
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  stop(): void {
    this.stopped = true;
    this.ws?.terminate();
  }
}
