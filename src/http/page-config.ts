/**
 * `GET /ws/config`: what the demo page must know before it connects. A browser cannot see why a
 * WebSocket upgrade was refused (a 401 looks like any dropped connection), so the page asks
 * whether the node requires a token and, without one, says so instead of retrying in silence.
 * It tells nothing else about the node.
 */
import { sendJson, type Router } from '../transport/router.js';

export interface PageConfig {
  /** A JWT option (--jwt-secret, --jwt-public-key, --jwks-url) is set: every WebSocket needs a token. */
  readonly tokenRequired: boolean;
}

export function addPageConfigRoute(router: Router, config: PageConfig): void {
  const body = { tokenRequired: config.tokenRequired };
  router.add('GET', '/ws/config', (_req, res) => sendJson(res, 200, body));
}
