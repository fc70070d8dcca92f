/** A minimal HTTP router: exact paths or patterns, per method. Health, metrics, API and page plug in here. */
import type { IncomingMessage, ServerResponse } from 'node:http';

export type RouteHandler = (req: IncomingMessage, res: ServerResponse, params: readonly string[]) => void | Promise<void>;

interface Route {
  readonly method: string;
  readonly path: string | RegExp;
  readonly handler: RouteHandler;
}

export class Router {
  private readonly routes: Route[] = [];

  /** Adds a route; a RegExp path passes its capture groups as `params`; method `*` takes any method. */
  add(method: string, path: string | RegExp, handler: RouteHandler): void {
    this.routes.push({ method, path, handler });
  }

  /** Answers `req`; 404 when no path matches, 405 when the path matches with another method. */
  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const pathname = pathOf(req.url);
    let pathMatched = false;
    for (const route of this.routes) {
      let params: string[] | undefined;
      if (typeof route.path === 'string') {
        if (route.path === pathname) params = [];
      } else {
        const m = route.path.exec(pathname);
        if (m) params = m.slice(1).map((p) => safeDecode(p ?? ''));
      }
      if (!params) continue;
      pathMatched = true;
      if (route.method !== '*' && route.method !== req.method && !(route.method === 'GET' && req.method === 'HEAD')) continue;
      await route.handler(req, res, params);
      return;
    }
    sendText(res, pathMatched ? 405 : 404, pathMatched ? 'method not allowed' : 'not found');
  }
}

/** The path part of a request URL, or '' when it cannot be parsed. */
export function pathOf(url: string | undefined): string {
  if (!url) return '';
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

export function sendText(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  if (res.headersSent) return;
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store', ...headers });
  res.end(body + '\n');
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent) return;
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers });
  res.end(JSON.stringify(body));
}

/** The request body, or 'too_large' as soon as it passes `max` bytes (the rest is not read). */
export function readBody(req: IncomingMessage, max: number): Promise<Buffer | 'too_large'> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > max) {
        req.off('data', onData);
        resolve('too_large');
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}
