/** A real WebSocket client for tests: queues what it receives so tests wait on messages, not sleeps. */
import { WebSocket, type ClientOptions } from 'ws';
import { Changes, until, untilEvent } from '../../harness/wait.js';

export class TestClient {
  readonly messages: string[] = [];
  closeCode: number | undefined;
  closeReason = '';
  /** Who closed it: the test (close() here) or the other end; for the message of a wait it ended. */
  private closedHere = false;
  private readonly openedAt = Date.now();
  private closedAt = 0;
  private readonly changes = new Changes();

  constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer) => {
      this.messages.push(data.toString());
      this.changes.notify();
    });
    ws.on('close', (code: number, reason: Buffer) => {
      this.closeCode = code;
      this.closeReason = reason.toString();
      this.closedAt = Date.now();
      this.changes.notify();
    });
    ws.on('error', () => {});
  }

  send(text: string): void {
    this.ws.send(text);
  }

  /** Sends a JSON frame. */
  sendJson(value: unknown): void {
    this.ws.send(JSON.stringify(value));
  }

  /** Resolves once `predicate` holds for the received messages (checked on every message). */
  until(predicate: (messages: string[]) => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
    return until(() => predicate(this.messages), {
      wake: this.changes,
      timeoutMs,
      what,
      abort: () => (this.closeCode === undefined ? undefined : `socket closed (${this.closeCode}${this.closeReason ? ` ${this.closeReason}` : ''}) ${this.closedHere ? 'by the test' : 'by the server or the network'}, ${this.closedAt - this.openedAt} ms after it was opened,`),
      detail: () => `got ${JSON.stringify(this.messages.slice(-5))}`,
    });
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
    if (this.closeCode !== undefined) return this.closeCode;
    const [code] = await untilEvent<[number]>(this.ws, 'close', { timeoutMs, what: 'the socket to close' });
    return code;
  }

  close(): void {
    this.closedHere = true;
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
