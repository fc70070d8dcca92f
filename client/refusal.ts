/**
 * Why an upgrade was refused. A browser's WebSocket tells nothing (a 401 is a plain close with
 * 1006); Node's `ws` tells the status only. So when an attempt fails before the socket opened, the
 * SDK asks the node's upgrade check (docs/client.md, "Refused connections"): `POST` to the
 * endpoint's URL with `/check` appended (same query, so the same `?token=`; the browser's cookies
 * go along, as with the upgrade), which runs the same gate and answers 204 (admitted now) or the
 * refusal's status with `{"error":CODE,"message":TEXT,"by":CONTROL}`.
 *
 * One request per failed attempt, so it is bounded by the reconnect backoff; a node or proxy
 * without the check (404 or a body that is not the check's) or a network failure tells nothing,
 * and the SDK goes on as it would without it.
 */

/** Which control refused the upgrade, as the node's check names it. */
export type RefusedBy = 'node' | 'origin' | 'limit' | 'token' | 'connect_hook';

/** A refused upgrade, as the node explains it. */
export interface UpgradeRefusal {
  /** The HTTP status the upgrade gets: 401, 403, 429, 503, … (docs/errors.md, "Refused upgrades"). */
  readonly status: number;
  /** The error code of that status: `unauthorized`, `forbidden`, `rate_limited`, `unavailable`, … */
  readonly code: string;
  /** What the node says, e.g. "missing token", "origin not allowed", "the back end refused the connection: log in first". */
  readonly message: string;
  /** Which control refused: `token` (the JWT), `connect_hook` (your back end), `origin`, `limit` or `node`. */
  readonly by?: RefusedBy;
}

type FetchLike = (url: string, init: { method: string; credentials: 'include'; cache: 'no-store'; signal?: AbortSignal }) => Promise<{
  readonly status: number;
  readonly headers: { get(name: string): string | null };
  text(): Promise<string>;
}>;

/** The check's URL for a WebSocket URL: http(s) for ws(s), `/check` after the path, the query kept. */
export function checkUrl(wsUrl: string): string {
  const url = new URL(wsUrl);
  url.protocol = url.protocol === 'wss:' ? 'https:' : 'http:';
  url.pathname = `${url.pathname.replace(/\/+$/, '')}/check`;
  url.hash = '';
  return url.toString();
}

/** True where the SDK can ask (a global `fetch`: browsers, Node 18+). */
export function canAskWhy(): boolean {
  return typeof (globalThis as { fetch?: unknown }).fetch === 'function';
}

/**
 * Asks the upgrade check about `wsUrl`: the refusal, `admitted` when the node would admit it now,
 * or undefined when the check could not tell (no check there, network failure, no answer within `timeoutMs`).
 */
export async function askWhy(wsUrl: string, timeoutMs: number): Promise<UpgradeRefusal | 'admitted' | undefined> {
  const fetchFn = (globalThis as { fetch?: FetchLike }).fetch;
  if (typeof fetchFn !== 'function') return undefined;
  const controller = typeof AbortController === 'function' ? new AbortController() : undefined;
  const timer = controller && timeoutMs > 0 && timeoutMs < 2 ** 31 ? setTimeout(() => controller.abort(), timeoutMs) : undefined;
  try {
    const res = await fetchFn(checkUrl(wsUrl), { method: 'POST', credentials: 'include', cache: 'no-store', ...(controller ? { signal: controller.signal } : {}) });
    if (res.status === 204) return 'admitted';
    if (!(res.headers.get('content-type') ?? '').includes('application/json')) return undefined;
    return refusalOf(res.status, await res.text());
  } catch {
    return undefined;
  } finally {
    clearTimeout(timer);
  }
}

/** The check's answer as a refusal, or undefined when it is not one (another server's 404, a malformed body). */
export function refusalOf(status: number, body: string): UpgradeRefusal | undefined {
  if (status < 400 || status === 404 || status === 405) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const { error, message, by } = value as Record<string, unknown>;
  if (typeof error !== 'string' || typeof message !== 'string') return undefined;
  return { status, code: error, message, ...(typeof by === 'string' ? { by: by as RefusedBy } : {}) };
}
