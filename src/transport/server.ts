/**
 * The HTTP(S) server of a node: plain requests go to the router; upgrades on a known WebSocket
 * path go through the gate, then to `ws` (permessage-deflate off: it costs CPU per socket and
 * defeats framing once per message).
 */
import { createServer as createHttpServer, STATUS_CODES, type IncomingMessage, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import { UpgradeStatus } from '../errors.js';
import { pathOf, sendText } from '../http/router.js';
import type { FanoutNode } from '../node/node.js';
import { MAX_FRAGMENTS, maxBufferedChunks } from './limits.js';

/** Creates the server; listening is the node's job. */
export function createTransport(node: FanoutNode): { server: Server; wss: WebSocketServer } {
  const { config } = node;
  // --handshake-timeout bounds the TLS handshake and the request headers (slowloris). Node checks
  // header timeouts on an interval (30 s by default): check often enough for the limit to hold.
  const timeoutMs = Math.max(1, config.handshakeTimeout) * 1000; // at least 1 s, as before
  const httpOptions = { connectionsCheckingInterval: Math.min(1000, Math.max(100, timeoutMs / 4)) };
  const server = config.tls
    ? createHttpsServer({ ...httpOptions, cert: config.tls.cert, key: config.tls.key, handshakeTimeout: timeoutMs })
    : createHttpServer(httpOptions);
  server.headersTimeout = timeoutMs;
  server.requestTimeout = timeoutMs + 5000;
  server.keepAliveTimeout = 5000;

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
    if (node.endpoint(path) && req.method === 'GET') {
      sendText(res, 426, 'this is a WebSocket endpoint', { upgrade: 'websocket', connection: 'Upgrade' });
      return;
    }
    node.router.handle(req, res).catch((err: unknown) => {
      node.logger.error({ err, path }, 'http handler failed');
      sendText(res, 500, 'internal error');
    });
  });

  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', destroyOnError);
    const endpoint = node.endpoint(pathOf(req.url));
    if (!endpoint) return reject(socket, 404, 'no WebSocket endpoint here');
    Promise.resolve(node.gate.check(req, endpoint.path))
      .then((result) => {
        if (socket.destroyed) return;
        if (!result.ok) {
          node.rejected(req, result.status, result.reason);
          return reject(socket, result.status, result.reason, result.headers);
        }
        // Caps again, synchronously: the upgrade below completes in this same turn.
        const late = node.gate.admit?.(req);
        if (late) {
          node.rejected(req, late.status, late.reason);
          return reject(socket, late.status, late.reason, late.headers);
        }
        wss.handleUpgrade(req, socket, head, (ws) => node.accept(endpoint, ws, req, result.identity));
      })
      .catch((err: unknown) => {
        node.logger.error({ err }, 'upgrade gate failed');
        reject(socket, 500, 'internal error');
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
  server.on('tlsClientError', (err: NodeJS.ErrnoException) => node.logger.debug({ code: err.code }, 'TLS handshake failed'));

  return { server, wss };
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
