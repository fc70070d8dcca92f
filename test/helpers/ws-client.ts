/** A real WebSocket client for tests: queues what it receives so tests wait on messages, not sleeps. */
import { WebSocket, type ClientOptions } from 'ws';

export class TestClient {
  readonly messages: string[] = [];
  closeCode: number | undefined;
  closeReason = '';
  private waiters: Array<() => void> = [];
  private readonly closed: Promise<number>;

  constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer) => {
      this.messages.push(data.toString());
      this.wake();
    });
    this.closed = new Promise((resolve) => {
      ws.on('close', (code: number, reason: Buffer) => {
        this.closeCode = code;
        this.closeReason = reason.toString();
        this.wake();
        resolve(code);
      });
    });
    ws.on('error', () => {});
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  send(text: string): void {
    this.ws.send(text);
  }

  /** Sends a JSON frame. */
  sendJson(value: unknown): void {
    this.ws.send(JSON.stringify(value));
  }

  /** Resolves once `predicate` holds for the received messages (checked on every message). */
  async until(predicate: (messages: string[]) => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate(this.messages)) {
      if (this.closeCode !== undefined) throw new Error(`socket closed (${this.closeCode}) while waiting for ${what}; got ${JSON.stringify(this.messages.slice(-5))}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}; got ${JSON.stringify(this.messages.slice(-5))}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Waits until `count` messages have arrived in all. */
  async count(count: number, timeoutMs = 5000): Promise<string[]> {
    await this.until((m) => m.length >= count, timeoutMs, `${count} messages`);
    return this.messages.slice(0, count);
  }

  /** Waits for the first received JSON frame (from `from` on) matching `match`, and returns it. */
  async json<T = Record<string, unknown>>(match: (frame: Record<string, unknown>) => boolean, timeoutMs = 5000): Promise<T> {
    let found: T | undefined;
    await this.until(
      (messages) => {
        for (const text of messages) {
          try {
            const frame = JSON.parse(text) as Record<string, unknown>;
            if (match(frame)) {
              found = frame as T;
              return true;
            }
          } catch {
            /* not JSON */
          }
        }
        return false;
      },
      timeoutMs,
      'a matching JSON frame',
    );
    return found!;
  }

  /** Resolves with the close code. */
  async waitClose(timeoutMs = 5000): Promise<number> {
    return Promise.race([
      this.closed,
      new Promise<number>((_, reject) => setTimeout(() => reject(new Error('timed out waiting for close')), timeoutMs).unref()),
    ]);
  }

  close(): void {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.terminate();
  }
}

/** Opens a WebSocket and resolves once it is open; rejects with the HTTP status when refused. */
export function connect(url: string, options: ClientOptions = {}): Promise<TestClient> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, options);
    const client = new TestClient(ws);
    ws.once('open', () => resolve(client));
    ws.once('unexpected-response', (_req, res) => {
      const err = new Error(`unexpected response ${res.statusCode}`) as Error & { status?: number };
      err.status = res.statusCode;
      ws.terminate();
      reject(err);
    });
    ws.once('error', reject);
  });
}

/** The HTTP status an upgrade to `url` is refused with (throws if it is accepted). */
export async function refusedStatus(url: string, options: ClientOptions = {}): Promise<number> {
  try {
    const client = await connect(url, options);
    client.close();
  } catch (err) {
    const status = (err as { status?: number }).status;
    if (status !== undefined) return status;
    throw err;
  }
  throw new Error(`upgrade to ${url} was accepted`);
}

/** Closes every client given. */
export function closeAll(clients: Iterable<TestClient>): void {
  for (const c of clients) c.close();
}
