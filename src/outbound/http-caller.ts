/**
 * The node's HTTP client for back-end hooks (docs/hooks.md): POSTs a JSON body to a hook URL and
 * hands back the status and the answer's text, or why there is none. Never throws, never waits
 * without end:
 *
 * - every call has one deadline (--hook-timeout) covering the connection, the request and the
 *   whole answer; past it the request is destroyed and the call is a `timeout`;
 * - at most --hook-concurrency calls are in flight per node; a call past it is refused at once
 *   (`overloaded`) rather than queued, so a slow back end costs a bounded number of sockets,
 *   timers and buffers, and clients hear "retry later" instead of waiting in a line (how the
 *   slots are shared between hooks and addresses is src/hooks/shares.ts);
 * - a call given an AbortSignal is abandoned when it aborts (its client went away): the request
 *   is destroyed, its slot freed, and the call ends `aborted`;
 * - answers are read up to a byte cap (`too_large` past it), so a back end cannot make the node
 *   buffer without bound.
 *
 * Every request carries `X-Fanout-Node`, `X-Fanout-Call-Id` (unique per call, the same if the
 * call is sent again) and, with --hook-secret, `X-Fanout-Signature: sha256=<hex HMAC-SHA256 of
 * the exact body bytes>`.
 *
 * At most once: a call is sent again (once, within its deadline) only when no byte of it left
 * the node: the connection was never made, or a kept-alive connection was found closed before the
 * request was written. Once any byte was written the back end may have read the call, so a reset
 * or a dropped connection after that ends the call (`network`) and it is never repeated; a back
 * end that sees one call id twice can drop the repeat all the same.
 *
 * Why node:http's Agent and not fetch (undici): the global fetch dispatcher is shared by the
 * whole process and its pool cannot be sized or closed without the `undici` package, and fetch
 * gives no way to stop reading an answer at a byte cap before it is buffered. An Agent with
 * keepAlive reuses connections (no TCP/TLS handshake per call), is sized to the concurrency cap
 * and is destroyed with the node.
 */
import { createHmac, randomUUID } from 'node:crypto';
import { Agent as HttpAgent, request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { Socket } from 'node:net';
import { errorMessage } from '../errors.js';

/** Why a call has no answer; `aborted`: its signal aborted (the client went away) and it was abandoned. */
export type CallFailure = 'timeout' | 'network' | 'overloaded' | 'too_large' | 'aborted';

export type CallResult =
  | { readonly ok: true; readonly status: number; readonly body: string; readonly seconds: number }
  | { readonly ok: false; readonly failure: CallFailure; readonly message: string; readonly seconds: number | undefined };

/** One request's outcome, before its duration is added. */
type Attempt =
  | { readonly ok: true; readonly status: number; readonly body: string }
  | { readonly ok: false; readonly failure: CallFailure; readonly message: string };

export interface HttpCallerOptions {
  /** Sent as `X-Fanout-Node`. */
  readonly nodeId: string;
  /** --hook-timeout, in milliseconds. */
  readonly timeoutMs: number;
  /** --hook-concurrency. */
  readonly concurrency: number;
  /** --hook-secret: signs every body. */
  readonly secret: string | undefined;
  /** Longest answer body read, in bytes. */
  readonly maxAnswerBytes: number;
  /** Past `maxAnswerBytes`, stop reading and keep the status (webhooks need only it) instead of failing `too_large`. */
  readonly statusOnly?: boolean;
  /** Headers that sign a body in another scheme than `X-Fanout-Signature` (Pusher's webhooks); used instead of `secret`. */
  readonly sign?: (body: Buffer) => Record<string, string>;
}

/**
 * Idle keep-alive connections are closed after this long: shorter than Node's default server
 * keep-alive timeout (5 s), so the node usually closes an idle connection before a back end
 * does and seldom reuses one the back end is closing. A call that was written to a connection the
 * back end had just closed fails (`network`) rather than risk a second delivery.
 */
const IDLE_SOCKET_MS = 4000;

/** Signature header value of `body` with `secret`: `sha256=<hex>`. */
export function signBody(secret: string, body: string | Buffer): string {
  return 'sha256=' + createHmac('sha256', secret).update(body).digest('hex');
}

export class HttpCaller {
  private inFlight = 0;
  private closed = false;
  private readonly http: HttpAgent;
  private readonly https: HttpsAgent;

  constructor(private readonly options: HttpCallerOptions) {
    const agent = { keepAlive: true, maxSockets: options.concurrency, maxFreeSockets: options.concurrency, timeout: IDLE_SOCKET_MS, scheduling: 'lifo' as const };
    this.http = new HttpAgent(agent);
    this.https = new HttpsAgent(agent);
  }

  /** Calls in flight now. */
  get pending(): number {
    return this.inFlight;
  }

  /** POSTs `json` to `url`. Resolves with the answer or the failure; never rejects. `signal` abandons the call. */
  async post(url: URL, json: string, signal?: AbortSignal): Promise<CallResult> {
    if (this.closed) return { ok: false, failure: 'network', message: 'the node is shutting down', seconds: undefined };
    if (signal?.aborted) return { ok: false, failure: 'aborted', message: 'the client went away', seconds: undefined };
    if (this.inFlight >= this.options.concurrency) {
      return { ok: false, failure: 'overloaded', message: `${this.options.concurrency} hook calls already in flight (--hook-concurrency)`, seconds: undefined };
    }
    this.inFlight++;
    const body = Buffer.from(json);
    const headers: Record<string, string | number> = {
      'content-type': 'application/json',
      'content-length': body.length,
      accept: 'application/json',
      'user-agent': 'fanout',
      'x-fanout-node': this.options.nodeId,
      'x-fanout-call-id': randomUUID(),
    };
    if (this.options.sign) Object.assign(headers, this.options.sign(body));
    else if (this.options.secret !== undefined) headers['x-fanout-signature'] = signBody(this.options.secret, body);
    const started = performance.now();
    try {
      const result = await this.attempt(url, body, headers, started + this.options.timeoutMs, true, signal);
      return { ...result, seconds: (performance.now() - started) / 1000 };
    } finally {
      this.inFlight--;
    }
  }

  /** Drops every connection; calls in flight end as `network` failures. Safe twice. */
  close(): void {
    this.closed = true;
    this.http.destroy();
    this.https.destroy();
  }

  /**
   * One request. When it fails before any byte of it left the node (see the file's comment) and
   * `mayResend`, it is sent once more on another connection within the same deadline, with the
   * same headers (the same call id).
   */
  private attempt(url: URL, body: Buffer, headers: Record<string, string | number>, deadline: number, mayResend: boolean, signal: AbortSignal | undefined): Promise<Attempt> {
    return new Promise((resolve) => {
      const https = url.protocol === 'https:';
      const req: ClientRequest = (https ? httpsRequest : httpRequest)(url, { method: 'POST', agent: https ? this.https : this.http, headers });
      const written = new WrittenBytes();
      req.once('socket', (socket: Socket) => written.watch(socket));
      let settled = false;
      const finish = (result: Attempt): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal?.removeEventListener('abort', abandon);
        resolve(result);
      };
      const timer = setTimeout(() => {
        finish({ ok: false, failure: 'timeout', message: `no answer within ${this.options.timeoutMs / 1000} s (--hook-timeout)` });
        req.destroy();
      }, Math.max(0, deadline - performance.now()));
      const abandon = (): void => {
        finish({ ok: false, failure: 'aborted', message: 'the client went away' });
        req.destroy();
      };
      signal?.addEventListener('abort', abandon, { once: true });
      req.on('response', (res: IncomingMessage) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > this.options.maxAnswerBytes && this.options.statusOnly) {
            finish({ ok: true, status: res.statusCode ?? 0, body: '' });
            req.destroy();
            return;
          }
          if (size > this.options.maxAnswerBytes) {
            finish({ ok: false, failure: 'too_large', message: `answer over ${this.options.maxAnswerBytes} bytes` });
            req.destroy();
            return;
          }
          chunks.push(chunk);
        });
        res.on('end', () => finish({ ok: true, status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', (err) => finish({ ok: false, failure: 'network', message: `answer cut off: ${errorMessage(err)}` }));
        res.on('close', () => finish({ ok: false, failure: 'network', message: 'answer cut off' }));
      });
      req.on('error', (err: NodeJS.ErrnoException) => {
        if (settled) return;
        if (mayResend && written.none(req.socket) && performance.now() < deadline && !this.closed) {
          settled = true;
          clearTimeout(timer);
          signal?.removeEventListener('abort', abandon);
          resolve(this.attempt(url, body, headers, deadline, false, signal));
          return;
        }
        finish({ ok: false, failure: 'network', message: errorMessage(err) });
      });
      req.end(body);
    });
  }
}

/**
 * Whether any byte of one request left the node. Node's ClientRequest emits 'socket' before it
 * writes to it, so the socket's `bytesWritten` then is what earlier requests on a kept-alive
 * connection wrote. A new connection counts bytes queued before it connects, so one that never
 * connected wrote nothing whatever its count says.
 */
class WrittenBytes {
  private before: number | undefined;
  private connected = false;

  watch(socket: Socket): void {
    this.before = socket.bytesWritten;
    if (!socket.connecting) this.connected = true;
    else socket.once('connect', () => (this.connected = true));
  }

  /** True only when it is certain that nothing of the request was written. */
  none(socket: Socket | null | undefined): boolean {
    if (this.before === undefined) return true; // no socket was ever given to the request
    if (!this.connected) return true;
    return socket?.bytesWritten === this.before;
  }
}
