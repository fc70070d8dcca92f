/**
 * A channel-protocol client for fault tests that behaves like the SDK: it reconnects with jittered
 * backoff after any close, resubscribes with `since` (the last position it saw), retries a
 * subscribe the server answered `unavailable`, and drops replays by offset. It records everything
 * a test needs to prove "no loss, no duplicates": the messages accepted, the replays the server
 * sent (should be none), close codes and the `recovered` flag of every resubscription.
 */
import { WebSocket } from 'ws';
import { Changes, until } from '../../harness/wait.js';

export interface Position {
  offset: number;
  epoch: string;
}

export interface Received {
  readonly offset: number;
  readonly epoch: string;
  readonly data: unknown;
}

type Frame = Record<string, unknown> & { type: string };

export class RecoveringChannelClient {
  readonly received: Received[] = [];
  /** Message frames the server sent again (offset at or below the last seen, same epoch). */
  duplicates = 0;
  readonly closeCodes: number[] = [];
  /** `recovered` of every resubscription made with `since`. */
  readonly recoveries: boolean[] = [];
  /** Nodes this client was connected to, in order. */
  readonly nodes: string[] = [];
  position: Position | undefined;
  subscribedCount = 0;
  private ws: WebSocket | undefined;
  private stopped = false;
  private attempt = 0;
  private ids = 1;
  private readonly changes = new Changes();

  constructor(
    private readonly url: string | (() => string),
    readonly channel: string,
  ) {}

  /** Connects and subscribes; resolves at the first `subscribed`. */
  async start(): Promise<void> {
    this.open();
    await this.until(() => this.subscribedCount >= 1, 10_000, 'first subscribed');
  }

  get node(): string | undefined {
    return this.nodes.at(-1);
  }

  private open(): void {
    if (this.stopped) return;
    const ws = new WebSocket(typeof this.url === 'string' ? this.url : this.url());
    this.ws = ws;
    let opened = false;
    ws.on('open', () => {
      opened = true;
      this.attempt = 0;
    });
    ws.on('message', (data: Buffer) => this.frame(ws, JSON.parse(data.toString()) as Frame));
    ws.on('error', () => {});
    ws.on('close', (code: number) => {
      if (opened) this.closeCodes.push(code);
      this.changes.notify();
      if (this.stopped) return;
      const delay = Math.min(2000, 50 * 2 ** this.attempt++) * (1 + Math.random());
      setTimeout(() => this.open(), delay);
    });
  }

  private subscribe(ws: WebSocket): void {
    const since = this.position;
    ws.send(JSON.stringify({ type: 'subscribe', channel: this.channel, id: this.ids++, ...(since ? { since } : {}) }));
  }

  private frame(ws: WebSocket, f: Frame): void {
    switch (f.type) {
      case 'connected':
        this.nodes.push(f.node as string);
        this.subscribe(ws);
        break;
      case 'message': {
        if (f.channel !== this.channel) break;
        const offset = f.offset as number;
        const epoch = f.epoch as string;
        if (this.position && this.position.epoch === epoch && offset <= this.position.offset) {
          this.duplicates++;
          break;
        }
        this.received.push({ offset, epoch, data: f.data });
        this.position = { offset, epoch };
        break;
      }
      case 'subscribed':
        if (f.recovered !== undefined) this.recoveries.push(f.recovered as boolean);
        // Fresh, or not recoverable (new epoch): the stream restarts at the confirmed position.
        if (f.recovered !== true) this.position = { offset: f.offset as number, epoch: f.epoch as string };
        this.subscribedCount++;
        break;
      case 'error':
        // `unavailable` (bus or store away): retry the subscribe, as the SDK does.
        if (f.code === 'unavailable' && f.channel === this.channel) setTimeout(() => ws.readyState === WebSocket.OPEN && this.subscribe(ws), 200);
        break;
    }
    this.changes.notify();
  }


  /** Resolves once `predicate` holds (checked on every event), or rejects after `timeoutMs`. */
  until(predicate: () => boolean, timeoutMs = 10_000, what = 'condition'): Promise<void> {
    // Also re-checked every 200 ms: a predicate may read state other than this client's.
    return until(predicate, { wake: this.changes, intervalMs: 200, timeoutMs, what, detail: () => `nodes ${this.nodes}, closes ${JSON.stringify(this.closeCodes)}, position ${JSON.stringify(this.position)}` });
  }

  /** Offsets received in `epoch`, in arrival order. */
  offsets(epoch: string): number[] {
    return this.received.filter((r) => r.epoch === epoch).map((r) => r.offset);
  }

  stop(): void {
    this.stopped = true;
    this.ws?.terminate();
  }
}
