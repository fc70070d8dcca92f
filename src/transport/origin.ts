/**
 * The Origin check against cross-site WebSocket hijacking. A browser always sends `Origin` on a
 * WebSocket handshake and a page cannot forge it, so comparing it against an exact list (or the
 * request's own Host) stops a foreign page from opening a socket with the user's cookies.
 *
 * Matching is exact on scheme, host and port after normalising (lower case, default ports filled
 * in): no prefix, suffix or substring matching, so `http://good.example.evil.example` never
 * matches `http://good.example`.
 */
import { ConfigError } from '../errors.js';

/** How upgrade requests' origins are judged; built once from --allowed-origins. */
export type OriginPolicy =
  | { readonly kind: 'same-origin' }
  | { readonly kind: 'any' }
  | { readonly kind: 'list'; readonly origins: ReadonlySet<string> };

const DEFAULT_PORTS: Readonly<Record<string, string>> = { 'http:': '80', 'https:': '443', 'ws:': '80', 'wss:': '443' };

/** `scheme://host:port` with the default port filled in, or undefined when `value` is not an origin. */
export function normalizeOrigin(value: string): string | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return undefined;
  }
  const port = url.port || DEFAULT_PORTS[url.protocol];
  if (!port || !url.hostname) return undefined;
  // An origin is only scheme, host and port: anything more means the value is not one.
  if (url.username || url.password || url.search || url.hash || (url.pathname !== '/' && url.pathname !== '')) return undefined;
  return `${url.protocol}//${url.hostname}:${port}`;
}

/**
 * Builds the policy from --allowed-origins: empty → same origin only; `*` → any; otherwise the
 * exact list. Throws a ConfigError naming the flag for an entry that is not an origin.
 */
export function originPolicy(allowed: readonly string[]): OriginPolicy {
  if (allowed.length === 0) return { kind: 'same-origin' };
  if (allowed.includes('*')) {
    if (allowed.length > 1) throw new ConfigError('--allowed-origins', '* cannot be combined with other origins');
    return { kind: 'any' };
  }
  const origins = new Set<string>();
  for (const entry of allowed) {
    const origin = normalizeOrigin(entry);
    if (!origin) throw new ConfigError('--allowed-origins', `expected origins like https://app.example.com[:port], got ${JSON.stringify(entry)}`);
    origins.add(origin);
  }
  return { kind: 'list', origins };
}

/**
 * True when a handshake with this Origin (undefined: the header is absent) may proceed.
 * Clients that send no Origin are not browsers and are let through (authentication is what
 * stops them); `Origin: null` (sandboxed frames, file://) is foreign.
 */
export function originAllowed(policy: OriginPolicy, origin: string | undefined, host: string | undefined): boolean {
  if (origin === undefined) return true;
  if (policy.kind === 'any') return true;
  const normalized = normalizeOrigin(origin);
  if (!normalized) return false;
  if (policy.kind === 'list') return policy.origins.has(normalized);
  if (!host) return false;
  // Same origin: the Origin's host:port is the Host header's (default port from the Origin's scheme).
  const url = new URL(normalized);
  const hostPort = parseHost(host, DEFAULT_PORTS[url.protocol]!);
  return hostPort !== undefined && hostPort === `${url.hostname}:${url.port || DEFAULT_PORTS[url.protocol]}`;
}

/** `Host` header → `hostname:port` normalised like an origin, or undefined when malformed. */
function parseHost(host: string, defaultPort: string): string | undefined {
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:[\]/?#@\s]+)(?::(\d{1,5}))?$/.exec(host.trim());
  if (!m) return undefined;
  let hostname: string;
  try {
    hostname = new URL(`http://${m[1]}`).hostname;
  } catch {
    return undefined;
  }
  return `${hostname}:${m[2] ? String(Number(m[2])) : defaultPort}`;
}
