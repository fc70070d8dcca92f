/**
 * The upgrade gate: everything that can be decided before a WebSocket upgrade is decided here and
 * answered with an HTTP status, so a refused client never gets a 101.
 *
 * Order, cheapest first: node state (503), Origin (403), connection caps (503 per node, 429 per
 * IP), then the JWT (401, or 503 when the JWKS cannot be fetched). The caps are checked again in
 * {@link Gate.admit}, synchronously just before `ws` completes the upgrade, because the JWT check
 * may wait on the network and other handshakes may have been admitted meanwhile.
 *
 * After the upgrade the gate keeps the per-IP counts and closes sockets whose token expired with
 * 4001: one sweep per node every second, no timer per socket.
 */
import type { IncomingMessage } from 'node:http';
import { TIMINGS, type Config, type OriginPolicy } from '../config/schema.js';
import { CloseCode, UpgradeStatus } from '../errors.js';
import type { Logger } from '../logger.js';
import { createAuthenticator, type Authenticator } from './auth.js';
import { ANONYMOUS, type Client, type Identity } from './client.js';
import { clientIp, IpCounter, normalizeIp } from './limits.js';
import { originAllowed, type RequestScheme } from './origin.js';

export type GateRefusal = { readonly ok: false; readonly status: number; readonly reason: string; readonly headers?: Readonly<Record<string, string>> };
export type GateResult = { readonly ok: true; readonly identity: Identity } | GateRefusal;

/** The flags the gate reads. */
export type GateConfig = Pick<
  Config,
  'allowedOrigins' | 'trustProxy' | 'maxConnections' | 'maxConnectionsPerIp' | 'auth' | 'jwtIssuer' | 'jwtAudience' | 'tls'
>;

/** What the gate needs from the node it guards. */
export interface GateHost {
  readonly config: GateConfig;
  readonly logger: Logger;
  /** True while the node accepts connections (running, not draining). */
  accepting(): boolean;
  /** WebSocket connections open on the node. */
  clientCount(): number;
  /** Writes every socket's queued frames now (so they go out ahead of a close frame). */
  flush(): void;
}

/** The gate: state, Origin, caps, JWT; per-IP counts and token expiry after the upgrade. */
export class SecurityGate {
  private readonly origins: OriginPolicy;
  private readonly auth: Authenticator | undefined;
  private readonly trustedProxies: ReadonlySet<string>;
  private readonly perIp = new IpCounter();
  /** Open sockets whose token has an `exp`; swept every second. */
  private readonly expiring = new Set<Client>();
  private sweepTimer: NodeJS.Timeout | undefined;

  constructor(private readonly node: GateHost) {
    const { config } = node;
    this.origins = config.allowedOrigins;
    this.auth = createAuthenticator(config);
    this.trustedProxies = new Set(config.trustProxy.map(normalizeIp));
    if (this.origins.kind === 'any') {
      node.logger.warn('--allowed-origins is *: any web page can open WebSockets to this node with its visitors\' cookies');
    }
  }

  /** Admits or refuses an upgrade request. */
  async check(req: IncomingMessage): Promise<GateResult> {
    if (!this.node.accepting()) return { ok: false, status: UpgradeStatus.UNAVAILABLE, reason: 'node is not accepting connections' };
    const origin = req.headers.origin;
    if (!originAllowed(this.origins, origin, req.headers.host, this.schemeOf(req))) return { ok: false, status: UpgradeStatus.FORBIDDEN, reason: 'origin not allowed' };
    const capped = this.admit(req);
    if (capped) return capped;
    if (!this.auth) return { ok: true, identity: ANONYMOUS };
    const result = await this.auth.authenticate(req);
    if (result.ok) return result;
    return {
      ok: false,
      status: result.status,
      reason: result.reason,
      headers: result.status === UpgradeStatus.UNAUTHORIZED ? { 'WWW-Authenticate': 'Bearer realm="fanout"' } : { 'Retry-After': '5' },
    };
  }

  /** The last, synchronous check right before the 101 (connection caps); undefined admits. */
  admit(req: IncomingMessage): GateRefusal | undefined {
    const { maxConnections, maxConnectionsPerIp } = this.node.config;
    if (maxConnections > 0 && this.node.clientCount() >= maxConnections) {
      return { ok: false, status: UpgradeStatus.UNAVAILABLE, reason: 'too many connections on this node', headers: { 'Retry-After': '5' } };
    }
    if (maxConnectionsPerIp > 0 && this.perIp.count(this.ipOf(req)) >= maxConnectionsPerIp) {
      return { ok: false, status: UpgradeStatus.TOO_MANY_REQUESTS, reason: 'too many connections from this address', headers: { 'Retry-After': '5' } };
    }
    return undefined;
  }

  /** https when this node terminates TLS, or a trusted proxy says it did (X-Forwarded-Proto); else http. */
  private schemeOf(req: IncomingMessage): RequestScheme {
    if (this.node.config.tls) return 'https';
    if (this.trustedProxies.size === 0 || !this.trustedProxies.has(normalizeIp(req.socket.remoteAddress ?? ''))) return 'http';
    return String(req.headers['x-forwarded-proto'] ?? '').toLowerCase() === 'https' ? 'https' : 'http';
  }

  /** The client's address as limits and logs see it (X-Forwarded-For behind a trusted proxy). */
  ipOf(req: IncomingMessage): string {
    return clientIp(req, this.trustedProxies);
  }

  opened(client: Client): void {
    this.perIp.add(client.ip);
    if (client.identity.expiresAt !== undefined) {
      this.expiring.add(client);
      this.sweepTimer ??= setInterval(() => this.sweep(), TIMINGS.expirySweepMs).unref();
    }
  }

  closed(client: Client): void {
    this.perIp.remove(client.ip);
    this.expiring.delete(client);
  }

  /** Closes every socket whose token has expired with 4001 (terminal: get a new token first). */
  sweep(now = Date.now()): void {
    let flushed = false;
    for (const client of this.expiring) {
      if (client.identity.expiresAt! > now) continue;
      this.expiring.delete(client);
      // What was queued for it before the expiry still goes out ahead of the close frame.
      if (!flushed) this.node.flush();
      flushed = true;
      this.node.logger.info({ client: client.id, ip: client.ip, origin: client.origin, user: client.identity.user }, 'token expired; closing');
      client.ws.close(CloseCode.TOKEN_EXPIRED, 'token expired');
    }
  }

  stop(): void {
    clearInterval(this.sweepTimer);
    this.sweepTimer = undefined;
    this.expiring.clear();
  }
}
