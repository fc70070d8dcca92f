/**
 * `GET /metrics`: the node's Prometheus metrics (its registry, src/metrics.ts) in the text exposition format.
 * With --metrics-token, only `Authorization: Bearer <token>` gets them (401 otherwise).
 * Scrape every node directly: through HAProxy a scrape would land on any one node, and the
 * generated HAProxy config refuses /metrics from outside for that reason.
 */
import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { sendText, type Router } from '../transport/router.js';

export const METRICS_PATH = '/metrics';

/** What the route serves: the exposition text of every family on the node's registry. */
export interface MetricsText {
  render(): Promise<{ readonly contentType: string; readonly body: string }>;
}

/** `token`: --metrics-token, when set. */
export function addMetricsRoutes(router: Router, metrics: MetricsText, token: string | undefined): void {
  const expected = token === undefined ? undefined : Buffer.from(`Bearer ${token}`);
  router.add('GET', METRICS_PATH, async (req, res) => {
    if (expected && !authorized(req, expected)) {
      sendText(res, 401, 'metrics need Authorization: Bearer <--metrics-token>', { 'www-authenticate': 'Bearer realm="fanout metrics"' });
      return;
    }
    const { contentType, body } = await metrics.render();
    if (res.headersSent) return;
    res.writeHead(200, { 'content-type': contentType, 'cache-control': 'no-store' });
    res.end(body);
  });
}

/** Constant-time comparison of the Authorization header with the expected value. */
function authorized(req: IncomingMessage, expected: Buffer): boolean {
  const given = Buffer.from(req.headers.authorization ?? '');
  return given.length === expected.length && timingSafeEqual(given, expected);
}
