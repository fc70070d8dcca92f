/**
 * A bare Server-Sent Events client over a raw TCP socket, the SSE lane of the load generator: the
 * counterpart of ws-raw.ts's RawClient, as cheap per event, so that the servers are measured.
 *
 * It subscribes the plain-EventSource way (docs/protocol.md, "Plain EventSource subscriptions"):
 * one `GET /ws/v1/sse?channel=C` and nothing to send after it; or, with `subscribe`, the way the
 * SDK's SSE transport does ("SSE transport"): `GET /ws/v1/sse` opens a session, and a
 * `POST /ws/v1/sse/{S}` carries the `subscribe` frame, whose answer comes down the stream. It reads the response's events
 * straight out of the socket's chunks (copying only an event split across chunks), hands each
 * event's `data:` line to `onText` as RawClient hands a text frame's payload, and is ready on the
 * `subscribed` event. Comments (`:`) and `retry:` carry no `data:` and are skipped.
 *
 * The node writes the stream without chunked encoding (it ends with the connection); a chunked
 * response (a proxy that re-chunks) is refused by name rather than misread.
 */
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { nowMicros } from './ws-raw.js';

export interface SseClientOptions {
  readonly host: string;
  readonly port: number;
  /** Request path with its query, e.g. `/ws/v1/sse?channel=bench`. */
  readonly path: string;
  readonly localAddress?: string | undefined;
  /** Session mode: the channel to subscribe to with a POST once `connected` names the session. */
  readonly subscribe?: string | undefined;
  /** Called with an event's `data:` bytes (a view into the chunk: use it before returning). */
  readonly onText: (data: Buffer, start: number, end: number, now: number) => void;
  /** Called once the stream says `subscribed`. */
  readonly onReady: () => void;
  /** Called once when the stream fails or ends. */
  readonly onClose: (reason: string) => void;
}

const HEADER_END = Buffer.from('\r\n\r\n');
const EVENT_END = Buffer.from('\n\n');
const DATA = Buffer.from('data: ');
const SUBSCRIBED = Buffer.from('"type":"subscribed"');
const ERROR = Buffer.from('"type":"error"');
const SESSION = /"session":"([^"]+)"/;
/** A `close` event's data (`{"code":…,"reason":…}`); every frame's JSON starts with `{"type":`. */
const CLOSE_DATA = Buffer.from('{"code":');

export class SseClient {
  readonly socket: Socket;
  ready = false;
  closed = false;
  private started = false;
  /** Session mode: the session `connected` named. */
  private session: string | undefined;
  private pending: Buffer | null = null;

  constructor(private readonly options: SseClientOptions) {
    this.socket = connect({ host: options.host, port: options.port, localAddress: options.localAddress });
    this.socket.setNoDelay(true);
    this.socket.on('connect', () => {
      this.socket.write(`GET ${options.path} HTTP/1.1\r\nHost: ${options.host}:${options.port}\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n`);
    });
    this.socket.on('data', (chunk: Buffer) => this.onData(chunk));
    this.socket.on('error', (err) => this.end(err.message));
    this.socket.on('close', () => this.end('closed'));
  }

  close(): void {
    this.socket.destroy();
    this.end('closed by client');
  }

  private end(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.destroy();
    this.options.onClose(reason);
  }

  private onData(chunk: Buffer): void {
    let buf = chunk;
    if (this.pending !== null) {
      buf = Buffer.concat([this.pending, chunk]);
      this.pending = null;
    }
    let pos = 0;
    if (!this.started) {
      const end = buf.indexOf(HEADER_END);
      if (end === -1) {
        this.pending = buf;
        return;
      }
      const head = buf.toString('latin1', 0, end);
      const chunked = /\r\ntransfer-encoding:\s*chunked/i.test(head);
      if (!head.startsWith('HTTP/1.1 200')) {
        // The refusal's reason, as far as this read holds it (a chunked body's first chunk).
        const raw = buf.toString('utf8', end + 4, Math.min(buf.length, end + 204));
        const body = (chunked ? (/^[0-9a-fA-F]+\r\n([^\r]*)/.exec(raw)?.[1] ?? '') : raw).trim();
        this.end(`stream refused: ${head.split('\r\n')[0]}${body ? ` ${body}` : ''}`);
        return;
      }
      if (chunked) {
        this.end('stream refused: a chunked response (this client reads the close-delimited stream the node writes)');
        return;
      }
      this.started = true;
      pos = end + 4;
    }
    const now = nowMicros();
    for (;;) {
      const end = buf.indexOf(EVENT_END, pos);
      if (end === -1) break;
      // The data line is an event's last (id:, event: come first and hold no "data: ").
      const at = buf.indexOf(DATA, pos);
      if (at !== -1 && at < end && (at === pos || buf[at - 1] === 0x0a)) {
        if (!this.onEvent(buf, at + DATA.length, end, now)) return;
      }
      pos = end + 2;
    }
    if (pos < buf.length) this.pending = pos === 0 ? buf : buf.subarray(pos);
  }

  /** One event's data; false once the stream is done with. */
  private onEvent(buf: Buffer, start: number, end: number, now: number): boolean {
    if (end - start >= CLOSE_DATA.length && buf.compare(CLOSE_DATA, 0, CLOSE_DATA.length, start, start + CLOSE_DATA.length) === 0) {
      this.end(`server closed ${buf.toString('utf8', start, end)}`);
      return false;
    }
    if (this.ready) {
      this.options.onText(buf, start, end, now);
      return true;
    }
    // Before the measured stream: `connected`, then `subscribed` (or an error frame).
    const head = Math.min(end, start + 200);
    const has = (needle: Buffer) => buf.subarray(start, head).includes(needle);
    if (this.options.subscribe !== undefined && this.session === undefined) {
      const session = SESSION.exec(buf.toString('utf8', start, end))?.[1];
      if (session !== undefined) {
        this.session = session;
        this.postSubscribe(session, this.options.subscribe);
        return true;
      }
    }
    if (has(SUBSCRIBED)) {
      this.ready = true;
      this.options.onReady();
    } else if (has(ERROR)) {
      this.end(`subscribe refused: ${buf.toString('utf8', start, head)}`);
      return false;
    }
    return true;
  }

  /** Session mode: the `subscribe` frame, POSTed from the stream's address (a session is bound to it). */
  private postSubscribe(session: string, channel: string): void {
    const { host, port, localAddress, path } = this.options;
    const body = JSON.stringify({ type: 'subscribe', channel, id: 1 });
    const req = request({ host, port, localAddress, method: 'POST', path: `${path.split('?')[0]}/${session}`, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }, agent: false });
    req.on('response', (res) => {
      res.resume();
      if (res.statusCode !== 204) this.end(`subscribe POST refused: ${res.statusCode}`);
    });
    req.on('error', (err) => this.end(`subscribe POST: ${err.message}`));
    req.end(body);
  }
}
