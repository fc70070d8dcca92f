/**
 * The Origin check against cross-site WebSocket hijacking. A browser always sends `Origin` on a
 * WebSocket handshake and a page cannot forge it, so comparing it against an exact list (or the
 * request's own Host) stops a foreign page from opening a socket with the user's cookies.
 *
 * Matching is exact on scheme, host and port after normalising (lower case, default ports filled
 * in): no prefix, suffix or substring matching, so `http://good.example.evil.example` never
 * matches `http://good.example`. The policy is built once, at load (config/origins.ts).
 */
import { DEFAULT_PORTS, normalizeOrigin, type OriginPolicy } from '../config/origins.js';

/** The scheme a client used to reach the node: https when the node or a trusted proxy in front of it terminated TLS. */
export type RequestScheme = 'http' | 'https';

/**
 * True when a handshake with this Origin (undefined: the header is absent) may proceed.
 * Clients that send no Origin are not browsers and are let through (authentication is what
 * stops them); `Origin: null` (sandboxed frames, file://) is foreign. Same-origin compares
 * scheme, host and port: the Origin's scheme must be the one the request came in with
 * (`scheme`; ws/wss count as http/https), its host and port the `Host` header's.
 */
export function originAllowed(policy: OriginPolicy, origin: string | undefined, host: string | undefined, scheme: RequestScheme = 'http'): boolean {
  if (origin === undefined) return true;
  if (policy.kind === 'any') return true;
  const normalized = normalizeOrigin(origin);
  if (!normalized) return false;
  if (policy.kind === 'list') return policy.origins.has(normalized);
  if (!host) return false;
  const url = new URL(normalized);
  const originScheme = url.protocol === 'ws:' ? 'http' : url.protocol === 'wss:' ? 'https' : url.protocol.slice(0, -1);
  if (originScheme !== scheme) return false;
  // Same origin: the Origin's host:port is the Host header's (default port from the scheme).
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
