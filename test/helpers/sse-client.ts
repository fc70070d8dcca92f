/** An SSE stream read with fetch and the SDK's parser (client/sse-socket.ts), for tests of the SSE transport. */
import { SseParser, type SseEvent } from '../../client/sse-socket.js';
import { until } from '../../harness/wait.js';

export type Frame = Record<string, unknown> & { type: string };

export class SseStream {
  readonly events: SseEvent[] = [];
  ended = false;
  private readonly abort = new AbortController();
  readonly parser = new SseParser();
  /** Comment lines seen (heartbeats). */
  comments = 0;

  private constructor(readonly status: number, readonly response: Response) {}

  /** Opens `url`; resolves once the response's headers are in (refused streams too: see `status`). */
  static async open(url: string, headers: Record<string, string> = {}): Promise<SseStream> {
    const abort = new AbortController();
    const res = await fetch(url, { headers: { accept: 'text/event-stream', ...headers }, signal: abort.signal });
    const stream = new SseStream(res.status, res);
    (stream as unknown as { abort: AbortController }).abort = abort;
    if (res.status === 200 && res.body) void stream.read(res.body);
    return stream;
  }

  private async read(body: ReadableStream<Uint8Array>): Promise<void> {
    const decoder = new TextDecoder();
    const reader = body.getReader();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        const text = decoder.decode(value, { stream: true });
        this.comments += text.split('\n').filter((line) => line.startsWith(':')).length;
        this.events.push(...this.parser.feed(text));
      }
    } catch {
      // aborted or cut
    }
    this.ended = true;
  }

  /** Every event's data as a frame (the `close` event's too, as `{type:'close',…}`). */
  get frames(): Frame[] {
    return this.events.map((e) => ({ ...(JSON.parse(e.data) as Record<string, unknown>), ...(e.event === 'close' ? { type: 'close' } : {}) }) as Frame);
  }

  /** The session id from `connected`. */
  get session(): string {
    const connected = this.frames.find((f) => f.type === 'connected');
    if (!connected) throw new Error('no connected frame yet');
    return connected.session as string;
  }

  async frame(match: (f: Frame) => boolean, timeoutMs = 10_000, what = 'a frame'): Promise<Frame> {
    await until(() => this.frames.some(match), { timeoutMs, what });
    return this.frames.find(match)!;
  }

  async untilEnded(timeoutMs = 10_000): Promise<void> {
    await until(() => this.ended, { timeoutMs, what: 'the stream to end' });
  }

  close(): void {
    this.abort.abort();
  }
}

/** POSTs `body` (a frame, an array, or raw text) to a session. */
export async function postFrames(url: string, body: unknown): Promise<{ status: number; text: string }> {
  const res = await fetch(url, { method: 'POST', body: typeof body === 'string' ? body : JSON.stringify(body), headers: { 'content-type': 'text/plain' } });
  return { status: res.status, text: await res.text() };
}
