/**
 * The SSE transport as a WebSocket (docs/client.md, "Transports"): a {@link WebSocketLike} the
 * SDK drives exactly as it drives a WebSocket, for networks that refuse WebSockets.
 *
 * It reads `GET <path>/sse` with `fetch` and a small SSE parser ({@link SseParser}), in browsers
 * and in Node 20 alike (Node has `fetch` but no `EventSource`, and `EventSource` cannot send
 * `Authorization` or `Last-Event-ID` on its first request). Each event's `data` is a frame, as a
 * WebSocket message. `send()`s of one turn go out as one `POST <path>/sse/{session}?seq=N` (an
 * array), in order, one POST at a time. A POST whose answer is lost (503 from a relay past its
 * deadline, 502 or 504 from a proxy, a network error) is sent again, the same batch with the same
 * `seq`, which the node runs once ({@link RESEND_DELAYS_MS}); one still without an answer after
 * {@link RESEND_FOR_MS} ends the socket with 1006, as a WebSocket whose frames cannot get through
 * dies: a frame either arrives once or the connection ends. When the stream breaks it resumes
 * once, at once, with `?session=` and `Last-Event-ID` (the node keeps a session 30 s); a resume
 * the node refuses is a new session, which ends this socket with 1006 so the SDK reconnects and
 * recovers with `since` as usual.
 * A POST refused before it ran is sent again too: after a 429 (past --rate-limit POSTs a second)
 * once its `Retry-After` has passed; after a 413 (the batch over --max-payload) in halves, and a
 * single frame over it is answered `too_large` (an error frame with its id), as the node would.
 * The node's last `close` event gives the close code (1001 on drain, 4508 slow consumer, …).
 */
import type { WebSocketLike } from './transport.js';

/** One SSE event: its `id`, its `event` name (`message` when none) and its `data`. */
export interface SseEvent {
  readonly id: string | undefined;
  readonly event: string;
  readonly data: string;
}

/** Parses an SSE stream (text/event-stream) fed in chunks of text. */
export class SseParser {
  private buffer = '';
  private data: string[] = [];
  private event = '';
  private id: string | undefined;
  /** The last id seen, as `Last-Event-ID` would carry it. */
  lastEventId: string | undefined;

  /** Takes a chunk; returns the events it completed. */
  feed(chunk: string): SseEvent[] {
    this.buffer += chunk;
    const out: SseEvent[] = [];
    let nl: number;
    while ((nl = this.buffer.search(/\r\n|\r|\n/)) !== -1) {
      // A CR that ends the chunk may be the first half of a CRLF: wait for the next chunk.
      if (nl === this.buffer.length - 1 && this.buffer[nl] === '\r') break;
      const line = this.buffer.slice(0, nl);
      this.buffer = this.buffer.slice(nl + (this.buffer.startsWith('\r\n', nl) ? 2 : 1));
      if (line === '') {
        if (this.data.length > 0) out.push({ id: this.id, event: this.event || 'message', data: this.data.join('\n') });
        this.data = [];
        this.event = '';
        this.id = undefined;
        continue;
      }
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon === -1 ? line : line.slice(0, colon);
      let value = colon === -1 ? '' : line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'data') this.data.push(value);
      else if (field === 'event') this.event = value;
      else if (field === 'id' && !value.includes('\0')) this.id = this.lastEventId = value;
    }
    return out;
  }
}

/** Waits before sending a POST again: the n-th resend waits the n-th (the last one from there on). */
export const RESEND_DELAYS_MS: readonly number[] = Object.freeze([250, 500, 1000, 2000]);
/**
 * How long one batch may go without an answer, resends included, before the socket ends (1006):
 * four times the relay's 2 s deadline, and short of the SDK's default `requestTimeout` (10 s), so
 * that a publish with an `idempotencyKey` can still be sent again after the reconnect in time.
 */
export const RESEND_FOR_MS = 8000;
/** Most frames in one POST (the node's limit, node/sse.ts MAX_POST_FRAMES). */
const MAX_BATCH = 100;
/** Longest `Retry-After` a 429 is waited for, ms (the node asks 1 s). */
const MAX_RETRY_AFTER_MS = 10_000;
/** Answers that say the POST may not have reached the session: sent again with the same seq. */
const RESEND_STATUSES: ReadonlySet<number> = new Set([502, 503, 504]);

const CONNECTING = 0;
const OPEN = 1;
const CLOSED = 3;

/** `ws://host/ws/v1?x` → `http://host/ws/v1/sse?x`. */
export function sseUrl(url: string): string {
  const u = new URL(url);
  u.protocol = u.protocol === 'wss:' ? 'https:' : u.protocol === 'ws:' ? 'http:' : u.protocol;
  u.pathname = u.pathname.replace(/\/$/, '') + '/sse';
  return u.toString();
}

export class SseSocket implements WebSocketLike {
  readyState = CONNECTING;
  onopen: ((event: unknown) => void) | null = null;
  onmessage: ((event: { readonly data: unknown }) => void) | null = null;
  onclose: ((event: { readonly code: number; readonly reason: string }) => void) | null = null;
  onerror: ((event: unknown) => void) | null = null;
  private readonly streamUrl: string;
  private readonly abort = new AbortController();
  private session: string | undefined;
  private parser = new SseParser();
  private outgoing: string[] = [];
  private posting = false;
  /** The seq of the last batch the session may have run (0: none yet). */
  private seq = 0;
  private closeCode: number | undefined;

  constructor(url: string) {
    this.streamUrl = sseUrl(url);
    void this.run();
  }

  send(data: string): void {
    if (this.readyState !== OPEN) throw new Error('the SSE session is not open');
    this.outgoing.push(data);
    if (this.outgoing.length === 1 && !this.posting) queueMicrotask(() => void this.post());
  }

  close(code = 1000, reason = ''): void {
    if (this.readyState === CLOSED) return;
    // The node would keep the session 30 s for a resume: tell it we are done (best effort).
    if (this.session !== undefined) void fetch(`${this.streamUrl.split('?')[0]}/${this.session}`, { method: 'DELETE', credentials: 'include', keepalive: true }).then((r) => r.body?.cancel(), () => {});
    this.abort.abort();
    this.end(code, reason);
  }

  private async run(): Promise<void> {
    let resumed = false;
    for (;;) {
      const ended = await this.stream(resumed);
      if (this.readyState === CLOSED) return;
      // The node ended the session (its `close` event), or a stream broke: one resume, at once.
      if (this.closeCode !== undefined || ended === 'refused' || resumed || this.session === undefined) {
        return this.end(this.closeCode ?? 1006, ended === 'refused' ? 'the SSE stream was refused' : 'the SSE stream ended');
      }
      resumed = true;
    }
  }

  /** Reads one stream to its end; 'refused' when it did not open. */
  private async stream(resume: boolean): Promise<'ended' | 'refused'> {
    let url = this.streamUrl;
    const headers: Record<string, string> = { accept: 'text/event-stream' };
    if (resume && this.session !== undefined && this.parser.lastEventId !== undefined) {
      const u = new URL(url);
      u.searchParams.set('session', this.session);
      url = u.toString();
      headers['last-event-id'] = this.parser.lastEventId;
    }
    let res: Response;
    try {
      res = await fetch(url, { headers, signal: this.abort.signal, credentials: 'include', cache: 'no-store' });
    } catch (err) {
      this.onerror?.({ message: (err as Error)?.message ?? 'SSE request failed' });
      return 'refused';
    }
    if (res.status !== 200 || !res.body) {
      this.onerror?.({ message: `Unexpected server response: ${res.status}` });
      void res.body?.cancel().catch(() => {});
      return 'refused';
    }
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    const lastBefore = this.parser.lastEventId;
    let first = true;
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done || this.readyState === CLOSED) break;
        for (const event of this.parser.feed(decoder.decode(value, { stream: true }))) {
          if (event.event === 'close') {
            try {
              const { code, reason } = JSON.parse(event.data) as { code: number; reason: string };
              this.closeCode = code;
              this.end(code, reason);
            } catch {
              this.end(1006, 'the SSE stream ended');
            }
            return 'ended';
          }
          // A resume the node could not grant starts a new session: this socket ends, the SDK reconnects.
          if (resume && first && event.data.startsWith('{"type":"connected"')) {
            this.parser.lastEventId = lastBefore;
            this.closeCode = 1006;
            this.abort.abort();
            return 'ended';
          }
          first = false;
          this.event(event);
        }
      }
    } catch {
      // The stream broke.
    }
    return 'ended';
  }

  private event(event: SseEvent): void {
    if (this.readyState === CONNECTING) {
      const session = /"session":"([^"]+)"/.exec(event.data)?.[1];
      if (session === undefined) return;
      this.session = session;
      this.readyState = OPEN;
      this.onopen?.({});
    }
    this.onmessage?.({ data: event.data });
  }

  /** Sends what was queued, one POST at a time, in order; each batch once (see the top of this file). */
  private async post(): Promise<void> {
    if (this.posting || this.outgoing.length === 0 || this.readyState !== OPEN) return;
    this.posting = true;
    const frames = this.outgoing.splice(0, MAX_BATCH);
    const seq = this.seq + 1;
    const url = `${this.streamUrl.split('?')[0]}/${this.session}?seq=${seq}`;
    let giveUpAt = Date.now() + RESEND_FOR_MS;
    let failure = '';
    try {
      for (let attempt = 0; ; attempt++) {
        const body = frames.length === 1 ? frames[0]! : `[${frames.join(',')}]`;
        const answer = await this.postOnce(url, body, giveUpAt);
        if (this.readyState !== OPEN) return;
        if (typeof answer === 'object' && 'status' in answer) {
          const { status } = answer;
          // 429 and 413 come from the node the POST reached, before the session: the batch did
          // not run (an earlier attempt without an answer may have: the same seq covers both).
          if (status === 429) {
            await new Promise((resolve) => setTimeout(resolve, answer.retryAfterMs));
            giveUpAt = Date.now() + RESEND_FOR_MS;
            if (this.readyState !== OPEN) return;
            continue;
          }
          if (status === 413 && frames.length > 1) {
            // Frames that each fit, over --max-payload together: the later half waits for the next POST.
            this.outgoing.unshift(...frames.splice(Math.ceil(frames.length / 2)));
            continue;
          }
          if (!RESEND_STATUSES.has(status)) {
            if (status === 413) this.tooLarge(frames[0]!);
            // A 413 never runs, whatever came before it (the same body, or a larger one split): the next POST takes this seq.
            if (status !== 413) this.seq = seq;
            // 404: the session is gone; 409: it missed a batch. Either way its frames have a hole: reconnect.
            if (status === 404 || status === 409) return this.close(1006, status === 404 ? 'the SSE session is gone' : 'the SSE session missed a POST');
            if (status >= 400 && status !== 413) this.onerror?.({ message: `POST answered ${status}` });
            break;
          }
          failure = `POST answered ${status}`;
        } else failure = answer.error;
        const delay = RESEND_DELAYS_MS[Math.min(attempt, RESEND_DELAYS_MS.length - 1)]!;
        if (Date.now() + delay >= giveUpAt) return this.close(1006, `an SSE POST got no answer for ${RESEND_FOR_MS} ms (${failure})`);
        await new Promise((resolve) => setTimeout(resolve, delay));
        if (this.readyState !== OPEN) return;
      }
    } finally {
      this.posting = false;
    }
    if (this.outgoing.length > 0) void this.post();
  }

  /** One frame alone over --max-payload: its request is answered `too_large`, as the node answers an HTTP body over it. */
  private tooLarge(frame: string): void {
    let request: { id?: unknown; channel?: unknown } = {};
    try {
      request = JSON.parse(frame) as typeof request;
    } catch {
      // Not JSON: the node would have answered bad_request; there is no id to answer.
    }
    const reply = { type: 'error', code: 'too_large', message: "the frame is over the node's --max-payload; it was not sent", id: typeof request.id === 'number' ? request.id : undefined, channel: typeof request.channel === 'string' ? request.channel : undefined };
    this.onmessage?.({ data: JSON.stringify(reply) });
  }

  /** One POST: its status (and a 429's wait), or the error that kept it from getting one (a network error, the socket closed, no answer by `giveUpAt`). */
  private async postOnce(url: string, body: string, giveUpAt: number): Promise<{ status: number; retryAfterMs: number } | { error: string }> {
    const abort = new AbortController();
    const stop = (): void => abort.abort();
    const timer = setTimeout(stop, Math.max(0, giveUpAt - Date.now()));
    this.abort.signal.addEventListener('abort', stop);
    try {
      // text/plain: a simple request, no CORS preflight.
      const res = await fetch(url, { method: 'POST', body, headers: { 'content-type': 'text/plain' }, credentials: 'include', cache: 'no-store', signal: abort.signal });
      void res.body?.cancel().catch(() => {});
      const seconds = Number(res.headers.get('retry-after'));
      return { status: res.status, retryAfterMs: Number.isFinite(seconds) && seconds > 0 ? Math.min(seconds * 1000, MAX_RETRY_AFTER_MS) : 1000 };
    } catch (err) {
      return { error: (err as Error)?.message || 'SSE POST failed' };
    } finally {
      clearTimeout(timer);
      this.abort.signal.removeEventListener('abort', stop);
    }
  }

  private end(code: number, reason: string): void {
    if (this.readyState === CLOSED) return;
    this.readyState = CLOSED;
    this.abort.abort();
    this.onclose?.({ code, reason });
  }
}
