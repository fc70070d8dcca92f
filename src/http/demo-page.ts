/**
 * The demo page at `GET /ws` (`GET /` redirects there) and its assets: files from `public/` (served as they are, no build
 * step) and what the browser loads of the build, from one place: the client SDK (`dist/client/`
 * at `/ws/client/`) and the protocol modules it imports (`dist/src/protocol/` at
 * `/ws/src/protocol/`, where the SDK's relative imports point). Nothing else of the build is served.
 */
import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sendText, type Router } from '../transport/router.js';

const PUBLIC_DIR = fileURLToPath(new URL('../../../public/', import.meta.url));
const CLIENT_DIR = fileURLToPath(new URL('../../client/', import.meta.url));
const PROTOCOL_DIR = fileURLToPath(new URL('../protocol/', import.meta.url));

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json',
  '.svg': 'image/svg+xml',
};

/** Only plain file names: no traversal, no hidden files. */
const SAFE_NAME = /^[A-Za-z0-9_-][A-Za-z0-9._-]*$/;

export function addDemoPageRoutes(router: Router): void {
  // `GET /` (a browser pointed at the node, or at HAProxy, which passes it on) goes to the page. A
  // relative Location keeps the scheme, host and port the client used, HAProxy's TLS included.
  router.add('GET', '/', (_req, res) => sendText(res, 302, 'see /ws', { location: '/ws' }));
  router.add('GET', '/ws', (_req, res) => serveFile(res, PUBLIC_DIR, 'index.html'));
  router.add('GET', '/ws/', (_req, res) => serveFile(res, PUBLIC_DIR, 'index.html'));
  router.add('GET', /^\/ws\/assets\/([^/]+)$/, (_req, res, [name]) => serveFile(res, PUBLIC_DIR, name!));
  router.add('GET', /^\/ws\/client\/([^/]+)$/, (_req, res, [name]) => serveFile(res, CLIENT_DIR, name!));
  router.add('GET', /^\/ws\/src\/protocol\/([^/]+)$/, (_req, res, [name]) => serveFile(res, PROTOCOL_DIR, name!));
}

async function serveFile(res: import('node:http').ServerResponse, dir: string, name: string): Promise<void> {
  const type = TYPES[extname(name)];
  if (!SAFE_NAME.test(name) || !type) return sendText(res, 404, 'not found');
  try {
    const body = await readFile(dir + name);
    res.writeHead(200, {
      'content-type': type,
      'content-length': body.length,
      'cache-control': 'no-cache',
      'x-content-type-options': 'nosniff',
    });
    res.end(body);
  } catch {
    sendText(res, 404, 'not found');
  }
}
