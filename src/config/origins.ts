/**
 * --allowed-origins parsed once, at load, into an {@link OriginPolicy}. Matching is exact on
 * scheme, host and port after normalising (lower case, default ports filled in): no prefix,
 * suffix or substring matching, so `http://good.example.evil.example` never matches
 * `http://good.example`. The check itself is the transport's (transport/origin.ts).
 */
import { ConfigError } from '../errors.js';

/** How upgrade requests' origins are judged; built once from --allowed-origins. */
export type OriginPolicy =
  | { readonly kind: 'same-origin' }
  | { readonly kind: 'any' }
  | { readonly kind: 'list'; readonly origins: ReadonlySet<string> };

/** The port a scheme implies when an origin leaves it out. */
export const DEFAULT_PORTS: Readonly<Record<string, string>> = { 'http:': '80', 'https:': '443', 'ws:': '80', 'wss:': '443' };

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
  if (allowed.length === 0) return Object.freeze({ kind: 'same-origin' });
  if (allowed.includes('*')) {
    if (allowed.length > 1) throw new ConfigError('--allowed-origins', '* cannot be combined with other origins');
    return Object.freeze({ kind: 'any' });
  }
  const origins = new Set<string>();
  for (const entry of allowed) {
    const origin = normalizeOrigin(entry);
    if (!origin) throw new ConfigError('--allowed-origins', `expected origins like https://app.example.com[:port], got ${JSON.stringify(entry)}`);
    origins.add(origin);
  }
  return Object.freeze({ kind: 'list', origins });
}
