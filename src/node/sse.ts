/**
 * The SSE transport of a WebSocket endpoint (docs/protocol.md, "SSE transport"), for clients that
 * cannot open a WebSocket and for plain `EventSource`/`curl` consumers:
 *
 * - `GET <sse path>` passes the same gate as an upgrade (state, Origin, caps, JWT in
 *   `Authorization`, `?token=` or the cookie, the connect hook), then opens a session: an
 *   {@link SseSession} the node adopts as it adopts a socket (node/sockets.ts), so the endpoint,
 *   the limits, heartbeats, drain and expiry treat both alike. `?session=S` with `Last-Event-ID`
 *   resumes a session of this node within 30 s (same address and user); otherwise it is a new one.
 * - `?channel=A&channel=B` is plain mode: the session subscribes to them on open (as `subscribe`
 *   frames through the endpoint: the same rights, hooks and limits), each event is named after its
 *   frame's type, and `Last-Event-ID` (channel positions) recovers every channel with `since`.
 * - `POST <sse path>/{S}` takes one frame or an array of frames for session S, as socket messages:
 *   the same decode(), rate limits and answers, which come down the stream. 204 when taken; 404
 *   for a session that does not exist (or another address's); 413 before reading a body over
 *   --max-payload; 429 past --rate-limit POSTs per second for one session. Any node takes it and
 *   forwards it to the session's node (node/sse-relay.ts): no sticky sessions. `?seq=N` numbers
 *   the POSTs of a session so that one sent again after a lost answer runs once
 *   (node/sse-sequence.ts).
 * - `DELETE <sse path>/{S}` ends session S at once (the SDK's close), with the same answers.
 *
 * The query string is never logged (it may carry `token` and `session`).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Config } from '../config/schema.js';
import type { ApiErrorCode } from '../errors.js';
import { CloseCode, httpStatusOf } from '../errors.js';
import type { Logger } from '../logger.js';
import { newClientId, type Client, type Identity } from '../transport/client.js';
import type { GateRefusal, SecurityGate } from '../transport/gate.js';
import { readBody, type Router } from '../transport/router.js';
import { PlainPositions, SseSession } from '../transport/sse-session.js';
import type { Endpoint } from './endpoint.js';
import { newSessionId, sessionOwner, SseRelay, type PostVerdict } from './sse-relay.js';
import { parseSeq, PostSequence } from './sse-sequence.js';
import type { Topics } from './topics.js';

/** The reconnect delay plain streams ask of EventSource. */
export const PLAIN_RETRY_MS = 1000;
/** Most frames one POST may carry. */
export const MAX_POST_FRAMES = 100;

export interface SseHost {
  readonly config: Pick<Config, 'maxPayload' | 'heartbeat' | 'rateLimit' | 'maxSubscriptions' | 'busPrefix'>;
  readonly nodeId: string;
  readonly logger: Logger;
  readonly gate: SecurityGate;
  readonly topics: Topics;
  /** The node adopts an admitted session as a connection of `endpoint` (node/sockets.ts). */
  adopt(endpoint: Endpoint, session: SseSession, req: IncomingMessage, identity: Identity, id: string): Client;
  /** True when `node` is this cluster's (the node registry of node/cluster-calls.ts): POSTs for sessions of other names are 404 at once. */
  knownNode(node: string): boolean;
  /** A refused stream, for logs and metrics (as a refused upgrade). */
  rejected(req: IncomingMessage, status: number, reason: string): void;
}

interface Held {
  readonly session: SseSession;
  readonly client: Client;
  /** The POSTs' `?seq=`: which batch ran last, and its verdict. */
  readonly sequence: PostSequence;
}

export class SseTransport {
  private readonly sessions = new Map<string, Held>();
  private readonly relay: SseRelay;
  /** POSTs per session in the current second (--rate-limit), cleared every second. */
  private posts = new Map<string, number>();
  private readonly postsTimer: NodeJS.Timeout;
  private commentTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly host: SseHost,
    private readonly endpoint: Endpoint,
    readonly path: string,
  ) {
    this.relay = new SseRelay({
      nodeId: host.nodeId,
      prefix: host.config.busPrefix,
      topics: host.topics,
      logger: host.logger,
      deliver: (session, ip, body, seq) => this.deliver(session, ip, body, seq),
    });
    this.postsTimer = setInterval(() => (this.posts = new Map()), 1000);
    this.postsTimer.unref();
    const heartbeat = host.config.heartbeat;
    if (heartbeat > 0) {
      // One timer for every stream: a comment each --heartbeat, whatever else was written.
      this.commentTimer = setInterval(() => {
        for (const { session } of this.sessions.values()) session.comment();
      }, heartbeat * 1000);
      this.commentTimer.unref();
    }
  }

  /** Sessions held by this node. */
  get size(): number {
    return this.sessions.size;
  }

  start(router: Router): void {
    this.relay.start();
    router.add('GET', this.path, (req, res) => this.open(req, res));
    const escaped = this.path.replace(/[/.]/g, '\\$&');
    router.add('POST', new RegExp(`^${escaped}/([^/]+)$`), (req, res, params) => this.post(req, res, params[0] ?? ''));
    router.add('DELETE', new RegExp(`^${escaped}/([^/]+)$`), (req, res, params) => this.post(req, res, params[0] ?? '', true));
  }

  stop(): void {
    clearInterval(this.postsTimer);
    clearInterval(this.commentTimer);
    this.relay.stop();
    for (const { session } of [...this.sessions.values()]) session.terminate();
  }

  // ---------------------------------------------------------------- GET: the stream

  private async open(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // A HEAD opens nothing: it hears what a GET would start with.
    if (req.method === 'HEAD') {
      res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store' });
      res.end();
      return;
    }
    const query = new URLSearchParams((req.url ?? '').split('?')[1] ?? '');
    const channels = query.getAll('channel');
    const plain = channels.length > 0;
    const max = this.host.config.maxSubscriptions;
    if (channels.length > max) return fail(res, 'bad_request', `at most ${max} channels per stream (--max-subscriptions)`);
    const { gate } = this.host;
    const id = newClientId();
    const abort = new AbortController();
    const onGone = (): void => abort.abort();
    res.once('close', onGone);
    const result = await gate.probe(req, id, this.path, abort.signal, false);
    res.off('close', onGone);
    if (res.destroyed || req.socket.destroyed) return;
    if (!result.ok) return this.refuse(req, res, result);
    const late = gate.admit(req);
    if (late) return this.refuse(req, res, late);
    const lastEventId = header(req, 'last-event-id');
    if (!plain && this.resume(req, res, query.get('session'), lastEventId, result.identity)) return;

    const positions = plain ? PlainPositions.parse(lastEventId, max) : undefined;
    const session = new SseSession({ id: newSessionId(this.host.nodeId), plain, stuckMs: this.host.config.heartbeat * 3000, positions });
    this.startStream(req, res);
    // EventSource reconnects after `retry` ms (its default is some seconds).
    if (plain) res.write(`retry: ${PLAIN_RETRY_MS}\n\n`);
    session.attach(res);
    const client = this.host.adopt(this.endpoint, session, req, result.identity, id);
    this.sessions.set(session.id, { session, client, sequence: new PostSequence() });
    session.once('close', () => this.sessions.delete(session.id));
    if (!plain) return;
    for (const channel of new Set(channels)) {
      const since = positions!.get(channel);
      session.receive(Buffer.from(JSON.stringify({ type: 'subscribe', channel, ...(since ? { since } : {}) })));
    }
  }

  /** `?session=S` with `Last-Event-ID`: takes up a session of this node that lost its stream; false when it cannot. */
  private resume(req: IncomingMessage, res: ServerResponse, id: string | null, lastEventId: string | undefined, identity: Identity): boolean {
    if (id === null || lastEventId === undefined || !/^\d{1,15}$/.test(lastEventId)) return false;
    const held = this.sessions.get(id);
    if (!held || held.client.ip !== this.host.gate.ipOf(req) || held.client.identity.user !== identity.user) return false;
    const after = Number(lastEventId);
    if (!held.session.canResume(after)) return false;
    this.startStream(req, res);
    held.session.attach(res, after);
    this.host.logger.info({ client: held.client.id, ip: held.client.ip }, 'SSE session resumed');
    return true;
  }

  private startStream(req: IncomingMessage, res: ServerResponse): void {
    // Not chunked: the stream ends with its connection, and the session writes its events to the
    // socket itself (transport/sse-session.ts), one write per flush as on a WebSocket.
    res.useChunkedEncodingByDefault = false;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      'x-accel-buffering': 'no',
      ...this.cors(req),
    });
    req.socket.setNoDelay(true);
    req.socket.setTimeout(0);
    // Headers and a first comment at once, through any proxy that waits for a body.
    res.write(':\n\n');
  }

  private refuse(req: IncomingMessage, res: ServerResponse, refusal: GateRefusal): void {
    this.host.rejected(req, refusal.status, refusal.reason);
    res.writeHead(refusal.status, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store', ...refusal.headers, ...this.cors(req) });
    res.end(refusal.reason + '\n');
  }

  /** A page of another allowed origin may read the stream and POST (the gate allowed its Origin, or there is none). */
  private cors(req: IncomingMessage): Record<string, string> {
    const origin = req.headers.origin;
    return origin ? { 'access-control-allow-origin': origin, 'access-control-allow-credentials': 'true', vary: 'Origin' } : {};
  }

  // ---------------------------------------------------------------- POST: client frames

  /** A POST of frames, or (`end`) a DELETE that ends the session at once (the client is done: no wait for a resume). */
  private async post(req: IncomingMessage, res: ServerResponse, session: string, end = false): Promise<void> {
    const cors = this.cors(req);
    const owner = sessionOwner(session);
    if (owner === undefined || (owner !== this.host.nodeId && !this.host.knownNode(owner))) return refuse(req, res, 'not_found', NO_SESSION, cors);
    const limit = this.host.config.rateLimit;
    const count = (this.posts.get(session) ?? 0) + 1;
    this.posts.set(session, count);
    if (limit > 0 && count > limit) return refuse(req, res, 'rate_limited', `over --rate-limit (${limit} POSTs/s for one session); wait a second`, { ...cors, 'retry-after': '1', 'access-control-expose-headers': 'Retry-After' });
    const seqText = end ? null : new URLSearchParams((req.url ?? '').split('?')[1] ?? '').get('seq');
    const seq = seqText === null ? undefined : parseSeq(seqText);
    if (seqText !== null && seq === undefined) return refuse(req, res, 'bad_request', '?seq= must be a positive integer (the POST\'s number in its session: 1, 2, 3…)', cors);
    const max = this.host.config.maxPayload;
    const length = Number(req.headers['content-length'] ?? 0);
    if (length > max) return refuse(req, res, 'too_large', `the body is over --max-payload (${max} bytes)`, cors);
    const body = end ? null : await readBody(req, max);
    if (body === 'too_large') return refuse(req, res, 'too_large', `the body is over --max-payload (${max} bytes)`, cors);
    const ip = this.host.gate.ipOf(req);
    const verdict = owner === this.host.nodeId ? this.deliver(session, ip, body, seq) : await this.relay.forward(owner, session, ip, body, seq);
    if (verdict.status === 204) {
      res.writeHead(204, { 'cache-control': 'no-store', ...cors });
      res.end();
      return;
    }
    const { error, message } = verdict as Extract<PostVerdict, { error: ApiErrorCode }>;
    fail(res, error, message, cors);
  }

  /** Hands a POST body to a session of this node, as socket messages (the answers come down its stream), once per `seq`. */
  private deliver(id: string, ip: string, body: Buffer | null, seq: number | undefined): PostVerdict {
    const held = this.sessions.get(id);
    if (!held || held.client.ip !== ip || !held.client.open) return { status: 404, error: 'not_found', message: NO_SESSION };
    if (body === null) {
      held.session.close(CloseCode.NORMAL, 'client closed');
      return { status: 204 };
    }
    return held.sequence.take(seq, () => run(held.session, body));
  }
}

/** Hands a POST body (one frame or an array of frames) to `session` as socket messages. */
function run(session: SseSession, body: Buffer): PostVerdict {
  let frames: Buffer[] = [body];
  if (body[0] === 0x5b /* [ */) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(body.toString('utf8'));
    } catch {
      parsed = undefined; // not JSON: decode() answers it as a socket's message
    }
    if (Array.isArray(parsed)) {
      if (parsed.length === 0) return { status: 400, error: 'bad_request', message: 'an empty array: send one frame or an array of frames' };
      if (parsed.length > MAX_POST_FRAMES) return { status: 400, error: 'bad_request', message: `at most ${MAX_POST_FRAMES} frames per POST` };
      frames = parsed.map((frame) => Buffer.from(JSON.stringify(frame)));
    }
  }
  for (const frame of frames) session.receive(frame);
  return { status: 204 };
}

const NO_SESSION = 'no such session (closed, expired, or its node stopped): open a new stream';

function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function fail(res: ServerResponse, error: ApiErrorCode, message: string, headers: Record<string, string> = {}): void {
  if (res.headersSent) return;
  res.writeHead(httpStatusOf(error), { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers });
  res.end(JSON.stringify({ error, message }));
}

/** Answers without reading the body, then closes the connection (its body is never taken in). */
function refuse(req: IncomingMessage, res: ServerResponse, error: ApiErrorCode, message: string, headers: Record<string, string>): void {
  const readAll = req.complete;
  fail(res, error, message, readAll ? headers : { ...headers, connection: 'close' });
  if (readAll) return;
  req.pause();
  const cut = (): void => {
    req.socket.end();
    setTimeout(() => req.socket.destroy(), 1000).unref();
  };
  if (res.writableFinished) cut();
  else res.once('finish', cut);
}

