/**
 * The node's HTTP client for back-end hooks (docs/hooks.md): POSTs a JSON body to a hook URL and
 * hands back the status and the answer's text, or why there is none. Never throws, never waits
 * without end:
 *
 * - every call has one deadline (--hook-timeout) covering the connection, the request and the
 *   whole answer; past it the request is destroyed and the call is a `timeout`;
 * - at most --hook-concurrency calls are in flight per node; a call past it is refused at once
 *   (`overloaded`) rather than queued, so a slow back end costs a bounded number of sockets,
 *   timers and buffers, and clients hear "retry later" instead of waiting in a line;
 * - answers are read up to a byte cap (`too_large` past it), so a back end cannot make the node
 *   buffer without bound.
 *
 * Every request carries `X-Fanout-Node` and, with --hook-secret, `X-Fanout-Signature:
 * sha256=<hex HMAC-SHA256 of the exact body bytes>`.
 *
 * Why node:http's Agent and not fetch (undici): the global fetch dispatcher is shared by the
 * whole process and its pool cannot be sized or closed without the `undici` package, and fetch
 * gives no way to stop reading an answer at a byte cap before it is buffered. An Agent with
 * keepAlive reuses connections (no TCP/TLS handshake per call), is sized to the concurrency cap
 * and is destroyed with the node.
 */
import { createHmac } from 'node:crypto';
import { Agent as HttpAgent, request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { errorMessage } from '../errors.js';

/** Why a call has no answer. */
export type CallFailure = 'timeout' | 'network' | 'overloaded' | 'too_large';

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
}

/**
 * Idle keep-alive connections are closed after this long: shorter than Node's default server
 * keep-alive timeout (5 s), so the node usually closes an idle connection before a back end
 * does and seldom reuses one the back end is closing (the one retry below covers the rest).
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

  /** POSTs `json` to `url`. Resolves with the answer or the failure; never rejects. */
  async post(url: URL, json: string): Promise<CallResult> {
    if (this.closed) return { ok: false, failure: 'network', message: 'the node is shutting down', seconds: undefined };
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
    };
    if (this.options.secret !== undefined) headers['x-fanout-signature'] = signBody(this.options.secret, body);
    const started = performance.now();
    try {
      const result = await this.attempt(url, body, headers, started + this.options.timeoutMs, true);
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
   * One request. A keep-alive connection the back end closed while idle fails with ECONNRESET
   * before any answer: that request never reached the back end, so it is sent once more on a
   * fresh connection within the same deadline (Node's documented pattern, `req.reusedSocket`).
   */
  private attempt(url: URL, body: Buffer, headers: Record<string, string | number>, deadline: number, mayRetry: boolean): Promise<Attempt> {
    return new Promise((resolve) => {
      const https = url.protocol === 'https:';
      const req: ClientRequest = (https ? httpsRequest : httpRequest)(url, { method: 'POST', agent: https ? this.https : this.http, headers });
      let settled = false;
      const finish = (result: Attempt): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(result);
      };
      const timer = setTimeout(() => {
        finish({ ok: false, failure: 'timeout', message: `no answer within ${this.options.timeoutMs / 1000} s (--hook-timeout)` });
        req.destroy();
      }, Math.max(0, deadline - performance.now()));
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
        if (mayRetry && req.reusedSocket && err.code === 'ECONNRESET' && performance.now() < deadline && !this.closed) {
          settled = true;
          clearTimeout(timer);
          resolve(this.attempt(url, body, headers, deadline, false));
          return;
        }
        finish({ ok: false, failure: 'network', message: errorMessage(err) });
      });
      req.end(body);
    });
  }
}
