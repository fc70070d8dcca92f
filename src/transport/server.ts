/**
 * The HTTP(S) server of a node: plain requests go to the router (`POST <endpoint>/check` to the
 * upgrade check, src/transport/check.ts); upgrades on a known WebSocket path go through the gate,
 * then to `ws` (permessage-deflate off: it costs CPU per socket and defeats framing once per message).
 */
import { createServer as createHttpServer, STATUS_CODES, type IncomingMessage, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Config } from '../config/schema.js';
import { UpgradeStatus } from '../errors.js';
import type { Logger } from '../logger.js';
import { newClientId, type Identity } from './client.js';
import { answerCheck, checkedEndpoint } from './check.js';
import type { SecurityGate } from './gate.js';
import { MAX_FRAGMENTS, maxBufferedChunks } from './limits.js';
import { pathOf, sendText, type Router } from './router.js';

/**
 * How long an idle keep-alive connection stays open, announced by Node as `Keep-Alive: timeout=15`.
 * Longer than the idle timeouts of common clients (Node's default agent 5 s, undici 4 s), so a back
 * end calling the node directly closes an idle connection before the node does; at Node's default
 * (5 s) a client that keeps idle sockets longer and ignores the hint could reuse one just as the node
 * closed it. Behind HAProxy (`option http-server-close`) the nodes' connections are never reused.
 */
export const KEEP_ALIVE_TIMEOUT_MS = 15_000;

/** What the server hands its requests and sockets to: the node core. */
export interface TransportHost {
  readonly config: Pick<Config, 'handshakeTimeout' | 'tls' | 'maxPayload'>;
  readonly logger: Logger;
  readonly gate: SecurityGate;
  /** Plain HTTP requests. */
  readonly router: Router;
  /** True when a WebSocket endpoint serves `path`. */
  hasEndpoint(path: string): boolean;
  /** Takes a socket the gate admitted and `ws` upgraded; `client` is its id. */
  accept(path: string, ws: WebSocket, req: IncomingMessage, identity: Identity, client: string): void;
  /** A refused upgrade, for logs and metrics. */
  rejected(req: IncomingMessage, status: number, reason: string): void;
}

/** Creates the server; listening is the node's job. */
export function createTransport(node: TransportHost): { server: Server; wss: WebSocketServer } {
  const { config } = node;
  // --handshake-timeout bounds the TLS handshake and the request headers (slowloris). Node checks
  // header timeouts on an interval (30 s by default): check often enough for the limit to hold.
  const timeoutMs = Math.max(1, config.handshakeTimeout) * 1000; // at least 1 s, as before
  const httpOptions = { connectionsCheckingInterval: Math.min(1000, Math.max(100, timeoutMs / 4)) };
  const server = config.tls
    ? createHttpsServer({ ...httpOptions, cert: config.tls.cert, key: config.tls.key, handshakeTimeout: timeoutMs })
    : createHttpServer(httpOptions);
  server.headersTimeout = timeoutMs;
  // Node keeps the first maxHeadersCount lines and drops the rest silently: keep one more than
  // allowed, so a request past the limit can be told apart and refused.
  server.maxHeadersCount = MAX_HEADER_LINES + 1;
  server.requestTimeout = timeoutMs + 5000;
  server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;

  const wss = new WebSocketServer({
    noServer: true,
    perMessageDeflate: false,
    maxPayload: config.maxPayload,
    clientTracking: false,
    // Caps against tiny-fragment and tiny-chunk floods (ws closes with 1008 past them).
    ...({ maxFragments: MAX_FRAGMENTS, maxBufferedChunks: maxBufferedChunks(config.maxPayload) } as object),
  });

  server.on('request', (req, res) => {
    const path = pathOf(req.url);
    if (tooManyHeaders(req)) {
      sendText(res, UpgradeStatus.HEADERS_TOO_LARGE, `more than ${MAX_HEADER_LINES} header lines`, { connection: 'close' });
      return;
    }
    if (node.hasEndpoint(path) && req.method === 'GET') {
      sendText(res, UpgradeStatus.UPGRADE_REQUIRED, 'this is a WebSocket endpoint', { upgrade: 'websocket', connection: 'Upgrade' });
      return;
    }
    const checked = checkedEndpoint(path);
    if (checked !== undefined && node.hasEndpoint(checked)) {
      answerCheck(node.gate, node.logger, req, res, checked).catch((err: unknown) => node.logger.error({ err, path }, 'upgrade check failed'));
      return;
    }
    node.router.handle(req, res).catch((err: unknown) => {
      node.logger.error({ err, path }, 'http handler failed');
      sendText(res, 500, 'internal error');
    });
  });

  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', destroyOnError);
    const path = pathOf(req.url);
    if (tooManyHeaders(req)) return reject(socket, UpgradeStatus.HEADERS_TOO_LARGE, `more than ${MAX_HEADER_LINES} header lines`);
    if (!node.hasEndpoint(path)) return reject(socket, UpgradeStatus.NOT_FOUND, 'no WebSocket endpoint here');
    // The id is given before the gate runs: the connect hook hears it.
    const client = newClientId();
    node.gate
      .check(req, client)
      .then((result) => {
        if (socket.destroyed) return;
        if (!result.ok) {
          node.rejected(req, result.status, result.reason);
          return reject(socket, result.status, result.reason, result.headers);
        }
        // Caps again, synchronously: the upgrade below completes in this same turn.
        const late = node.gate.admit(req);
        if (late) {
          node.rejected(req, late.status, late.reason);
          return reject(socket, late.status, late.reason, late.headers);
        }
        wss.handleUpgrade(req, socket, node.gate.handOver(req, head), (ws) => node.accept(path, ws, req, result.identity, client));
      })
      .catch((err: unknown) => {
        node.logger.error({ err }, 'upgrade gate failed');
        reject(socket, UpgradeStatus.INTERNAL, 'internal error');
      });
  });

  // Malformed requests, oversized headers and slow headers get a status, never a crash.
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    const status =
      err.code === 'HPE_HEADER_OVERFLOW'
        ? UpgradeStatus.HEADERS_TOO_LARGE
        : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? UpgradeStatus.REQUEST_TIMEOUT
          : UpgradeStatus.BAD_REQUEST;
    node.logger.info({ code: err.code, status }, 'bad request refused');
    if (socket.writable) socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    socket.destroy();
  });
  server.on('tlsClientError', (err: NodeJS.ErrnoException, tlsSocket: Duplex) => {
    node.logger.debug({ code: err.code }, 'TLS handshake failed');
    // Plain HTTP sent to the TLS port: answer 400 in plain text, as web servers do, instead of a silent close.
    const raw = (tlsSocket as Duplex & { _parent?: Duplex })._parent;
    if (err.code === 'ERR_SSL_HTTP_REQUEST' && raw?.writable) {
      const body = 'this port speaks TLS: use https:// or wss://\n';
      raw.end(`HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    }
  });

  return { server, wss };
}

/** Most request header lines a node reads (HAProxy's limit is lower: 101, answered with 400). */
export const MAX_HEADER_LINES = 2000;

function tooManyHeaders(req: IncomingMessage): boolean {
  return req.rawHeaders.length / 2 > MAX_HEADER_LINES;
}

/**
 * A module-level listener, not a closure: a closure made in the upgrade handler would share its
 * scope with the gate callback and keep `req` (and all its headers) alive for as long as the
 * socket lives, about 2 KB per connection.
 */
function destroyOnError(this: Duplex): void {
  this.destroy();
}

/** Answers an upgrade request with an HTTP status instead of a 101, then closes the socket. */
export function reject(socket: Duplex, status: number, reason: string, headers: Readonly<Record<string, string>> = {}): void {
  if (!socket.writable) return void socket.destroy();
  const body = reason + '\n';
  const extra = Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('');
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\n` +
      'Connection: close\r\nContent-Type: text/plain; charset=utf-8\r\n' +
      `Content-Length: ${Buffer.byteLength(body)}\r\n${extra}\r\n${body}`,
  );
}
