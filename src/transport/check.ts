/**
 * The upgrade check, `POST <endpoint>/check` (`/ws/v1/check`, `/ws/echo/check`): why would this
 * request's WebSocket upgrade be refused? A browser cannot see the status of a refused upgrade
 * (every refusal looks like a dropped connection, close code 1006), so the SDK asks here after an
 * upgrade failed, with the same URL (the same `?token=`) and the same cookies, and tells the app.
 *
 * It runs the very gate an upgrade goes through (src/transport/gate.ts, {@link SecurityGate.probe}):
 * node state, Origin, caps, JWT, connect hook, and answers `204` when the upgrade would be
 * admitted now, or the refusal's status with the JSON body of the HTTP API:
 * `{"error":CODE,"message":TEXT,"by":CONTROL}` (CODE from the error registry, CONTROL the
 * {@link RefusedBy} that refused) and the refusal's headers (`Retry-After`, `WWW-Authenticate`).
 *
 * POST, not GET: browsers send `Origin` on every POST, so the Origin check holds here exactly as on
 * an upgrade, and a foreign page cannot make a visitor's browser ask the connect hook with the
 * visitor's cookies (a cross-site GET from an `<img>` carries no Origin). The request has no
 * body. An allowed Origin gets CORS headers (with credentials), so a page on another allowed
 * origin can read the answer.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ErrorCodeName } from '../errors.js';
import type { Logger } from '../logger.js';
import { newClientId } from './client.js';
import type { GateResult, SecurityGate } from './gate.js';
import { sendJson } from './router.js';

/** What an endpoint's path gets appended to name its check. */
export const CHECK_SUFFIX = '/check';

/** The endpoint path a check path names (`/ws/v1/check` → `/ws/v1`), or undefined for other paths. */
export function checkedEndpoint(path: string): string | undefined {
  return path.endsWith(CHECK_SUFFIX) ? path.slice(0, -CHECK_SUFFIX.length) : undefined;
}

/** The error code a refused upgrade's status maps to (the registry's code with that HTTP status). */
const CODE_OF_STATUS: Readonly<Record<number, ErrorCodeName>> = {
  400: 'bad_request',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not_found',
  429: 'rate_limited',
  500: 'internal',
  503: 'unavailable',
};

/** Answers one check of the upgrade to `endpoint`. */
export async function answerCheck(gate: SecurityGate, logger: Logger, req: IncomingMessage, res: ServerResponse, endpoint: string): Promise<void> {
  if (req.method !== 'POST') {
    return sendJson(res, 405, { error: 'method_not_allowed', message: `the upgrade check takes POST ${endpoint}${CHECK_SUFFIX}` }, { allow: 'POST' });
  }
  if (Number(req.headers['content-length'] ?? 0) > 0 || req.headers['transfer-encoding'] !== undefined) {
    return sendJson(res, 400, { error: 'bad_request', message: 'the upgrade check takes no body' }, { connection: 'close' });
  }
  // The client hanging up aborts the connect hook's call, as for a pending upgrade.
  const gone = new AbortController();
  const onClose = (): void => {
    if (!res.writableFinished) gone.abort();
  };
  res.once('close', onClose);
  let result: GateResult;
  try {
    result = await gate.probe(req, newClientId(), endpoint, gone.signal);
  } catch (err) {
    logger.error({ err }, 'upgrade check failed');
    return sendJson(res, 500, { error: 'internal', message: 'internal error' });
  } finally {
    res.off('close', onClose);
  }
  if (result.ok) {
    if (res.headersSent) return;
    res.writeHead(204, { 'cache-control': 'no-store', ...cors(req, true) });
    res.end();
    return;
  }
  logger.debug({ ip: gate.ipOf(req), origin: req.headers.origin, path: endpoint, status: result.status, reason: result.reason }, 'upgrade check: would be refused');
  const body = { error: CODE_OF_STATUS[result.status] ?? 'internal', message: result.reason, by: result.by };
  sendJson(res, result.status, body, { ...result.headers, ...cors(req, result.by !== 'origin') });
}

/** CORS headers for a request whose Origin the gate allowed, so the page that sent it may read the answer. */
function cors(req: IncomingMessage, allowed: boolean): Record<string, string> {
  const origin = req.headers.origin;
  if (!allowed || origin === undefined) return {};
  return { 'access-control-allow-origin': origin, 'access-control-allow-credentials': 'true', vary: 'Origin' };
}
