/**
 * The upgrade gate: everything that can be decided before a WebSocket upgrade is decided here and
 * answered with an HTTP status, so a refused client never gets a 101.
 *
 * Order, cheapest first: node state (503), Origin (403), connection caps (503 per node, 429 per
 * IP), then the JWT (401, or 503 when the JWKS cannot be fetched), then the connect hook when
 * there is one (its 401/403, or 503 when it cannot answer): with both, a valid JWT admits without
 * the hook, and the hook decides every other request. The caps are checked again in
 * {@link Gate.admit}, synchronously just before `ws` completes the upgrade, because the JWT check
 * and the hook may wait on the network and other handshakes may have been admitted meanwhile.
 *
 * A pending upgrade (its request passed the caps and waits on the JWKS or the connect hook)
 * counts towards --max-connections-per-ip from then until it is admitted, refused, or its socket
 * closes. While the connect hook is asked the socket is read, so that a client that hangs up is
 * noticed (Node leaves an upgrade's socket unread): its call is aborted and src/hooks frees its
 * slot. Bytes a client sends before its 101 (RFC 6455 says it must not) are kept, up to
 * {@link MAX_EARLY_BYTES}, and handed to `ws` after the request's own. The connect hook's shares
 * (per node, per address) are src/hooks/shares.ts.
 *
 * After the upgrade the gate keeps the per-IP counts, and its identity lifetime
 * (src/transport/lifetime.ts) closes sockets whose identity expired unrenewed with 4001: one sweep
 * per node every second, no timer per socket.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Config, OriginPolicy } from '../config/schema.js';
import { UpgradeStatus } from '../errors.js';
import type { ConnectRequest, ConnectVerdict, HookCall } from '../hooks/hooks.js';
import type { Logger } from '../logger.js';
import { createAuthenticator, type Authenticator, type TokenCheck } from './auth.js';
import { ANONYMOUS, type Client, type Identity } from './client.js';
import { IdentityLifetime, type RefreshHook } from './lifetime.js';
import { clientIp, IpCounter, normalizeIp } from './limits.js';
import { originAllowed, type RequestScheme } from './origin.js';
import { pathOf } from './router.js';

/**
 * Which control refused (docs/security.md): the node's state (`node`: draining, closed), the
 * Origin check (`origin`), the connection caps (`limit`: --max-connections, --max-connections-per-ip),
 * the JWT (`token`: a bad token, or a JWKS that cannot be fetched) or the back end (`connect_hook`).
 * The upgrade check tells clients (src/transport/check.ts), so a page can say what to do.
 */
export type RefusedBy = 'node' | 'origin' | 'limit' | 'token' | 'connect_hook';
export type GateRefusal = {
  readonly ok: false;
  readonly status: number;
  readonly reason: string;
  readonly by: RefusedBy;
  readonly headers?: Readonly<Record<string, string>>;
};
export type GateResult = { readonly ok: true; readonly identity: Identity } | GateRefusal;

/** The flags the gate reads. */
export type GateConfig = Pick<
  Config,
  'allowedOrigins' | 'trustProxy' | 'maxConnections' | 'maxConnectionsPerIp' | 'auth' | 'jwtIssuer' | 'jwtAudience' | 'tls'
>;

/** The --connect-hook, as the gate calls it (src/hooks). */
export interface ConnectHook {
  connect(request: ConnectRequest, on: HookCall): Promise<ConnectVerdict>;
}

/** Most bytes a client may send before its 101 while the connect hook is asked; past it the socket is cut. */
export const MAX_EARLY_BYTES = 64 * 1024;

/** A pending upgrade's hold on its address's count, kept on its socket until it is admitted, refused or closed. */
interface Hold {
  readonly gate: SecurityGate;
  readonly ip: string;
  /** Aborts the connect-hook call when the socket closes first; made only when the hook is asked. */
  abort: AbortController | undefined;
  /** What the client sent before its 101, while the socket was read. */
  early: Buffer[] | undefined;
  earlyBytes: number;
}

const kHold = Symbol('fanout.hold');
type HeldSocket = Duplex & { [kHold]?: Hold };

// Module-level listeners (no closure per socket), `this` being the pending upgrade's socket.
/** The client went away before its upgrade was decided. */
function onHeldClose(this: HeldSocket): void {
  const hold = this[kHold];
  if (!hold) return;
  hold.gate.release(this);
  hold.abort?.abort();
}
/** The client half-closed: it cannot use a WebSocket any more (HTTP server sockets allow half-open ones, so close it). */
function onHeldEnd(this: HeldSocket): void {
  this.destroy();
}
function onHeldData(this: HeldSocket, chunk: Buffer): void {
  const hold = this[kHold];
  if (!hold) return;
  hold.earlyBytes += chunk.length;
  if (hold.earlyBytes > MAX_EARLY_BYTES) return void this.destroy();
  (hold.early ??= []).push(chunk);
}

const RETRY_AFTER = { 'Retry-After': '5' } as const;
const BEARER = { 'WWW-Authenticate': 'Bearer realm="fanout"' } as const;

/** What the gate needs from the node it guards. */
export interface GateHost {
  readonly config: GateConfig;
  readonly logger: Logger;
  /** --connect-hook, when configured. */
  readonly connectHook?: ConnectHook | undefined;
  /** --refresh-hook, when configured. */
  readonly refreshHook?: RefreshHook | undefined;
  /** A connection's identity was renewed (src/transport/lifetime.ts): its endpoint re-checks its subscriptions. */
  renewed(client: Client, previous: Identity): void;
  /** True while the node accepts connections (running, not draining). */
  accepting(): boolean;
  /** True when the identity's token is revoked (docs/auth.md, "Revocation"): a lookup in the node's copy, no store round trip. */
  revoked?(identity: Pick<Identity, 'user' | 'tokenId' | 'issuedAt'>): boolean;
  /** WebSocket connections open on the node. */
  clientCount(): number;
  /** Writes every socket's queued frames now (so they go out ahead of a close frame). */
  flush(): void;
}

/** The gate: state, Origin, caps, JWT; per-IP counts and the identity's lifetime after the upgrade. */
export class SecurityGate {
  private readonly origins: OriginPolicy;
  private readonly auth: Authenticator | undefined;
  private readonly trustedProxies: ReadonlySet<string>;
  private readonly perIp = new IpCounter();
  /** Expiry and renewal of the admitted sockets' identities. */
  readonly lifetime: IdentityLifetime;

  constructor(private readonly node: GateHost) {
    const { config } = node;
    this.origins = config.allowedOrigins;
    this.auth = createAuthenticator(config);
    this.trustedProxies = new Set(config.trustProxy.map(normalizeIp));
    this.lifetime = new IdentityLifetime({
      logger: node.logger,
      refreshHook: node.refreshHook,
      flush: () => node.flush(),
      renewed: (client, previous) => node.renewed(client, previous),
    });
    if (this.origins.kind === 'any') {
      node.logger.warn('--allowed-origins is *: any web page can open WebSockets to this node with its visitors\' cookies');
    }
  }

  /** Admits or refuses an upgrade request; `client` is the id the socket will have (the connect hook hears it). */
  async check(req: IncomingMessage, client: string): Promise<GateResult> {
    const screened = this.screen(req) ?? this.admit(req);
    if (screened) return screened;
    this.hold(req);
    let result: GateResult;
    try {
      result = await this.decide(req, client, (hook) => this.askForUpgrade(hook, req, client));
    } catch (err) {
      this.release(req.socket);
      throw err;
    }
    if (!result.ok) this.release(req.socket);
    return result;
  }

  /**
   * The upgrade check (src/transport/check.ts): what {@link check} would answer this request,
   * without a socket to upgrade. It is bounded as an upgrade is: it counts towards
   * --max-connections-per-ip while it runs, and its connect-hook call draws on the connect hook's
   * shares (the node's half, 4 per address), so it opens no new way to load the node or the back
   * end. `path` is the endpoint's, as the upgrade would name it; the hook hears `"check":true`.
   * `signal` aborts the hook call when the client goes away.
   */
  async probe(req: IncomingMessage, client: string, path: string, signal: AbortSignal, check = true): Promise<GateResult> {
    const screened = this.screen(req) ?? this.capped(req);
    if (screened) return screened;
    const ip = this.ipOf(req);
    this.perIp.add(ip);
    try {
      // An SSE stream (node/sse.ts) is decided the same way, as a real connection (`check` false).
      return await this.decide(req, client, (hook) => hook.connect({ ...connectRequest(req, client, ip), path, ...(check ? { check: true } : {}) }, { address: ip, signal }));
    } finally {
      this.perIp.remove(ip);
    }
  }

  /**
   * Verifies a token sent over the socket (`refresh`, a subscription token) with the node's JWT
   * settings; undefined when the node has no `--jwt-*` (it takes no tokens). A revoked token (its
   * `jti`, or its user's tokens issued before its `iat`: docs/auth.md, "Revocation") is refused
   * here as at the upgrade.
   */
  verify(token: string): Promise<TokenCheck> | undefined {
    return this.auth?.verify(token).then((check): TokenCheck => {
      if (!check.ok || !this.node.revoked) return check;
      const { jti, iat, sub } = check.payload;
      const identity = { user: typeof sub === 'string' ? sub : undefined, tokenId: typeof jti === 'string' ? jti : undefined, issuedAt: typeof iat === 'number' ? iat : undefined };
      return this.node.revoked(identity) ? { ok: false, status: 401, reason: 'token revoked' } : check;
    });
  }

  /** Node state and Origin: the checks that cost nothing. */
  private screen(req: IncomingMessage): GateRefusal | undefined {
    if (!this.node.accepting()) return { ok: false, status: UpgradeStatus.UNAVAILABLE, reason: 'node is not accepting connections', by: 'node', headers: RETRY_AFTER };
    const origin = req.headers.origin;
    if (!originAllowed(this.origins, origin, req.headers.host, this.schemeOf(req))) return { ok: false, status: UpgradeStatus.FORBIDDEN, reason: 'origin not allowed', by: 'origin' };
    return undefined;
  }

  /** JWT and connect hook: who the request is, or why it is refused. `ask` calls the hook (undefined: the client went away first). */
  private async decide(req: IncomingMessage, client: string, ask: (hook: ConnectHook) => Promise<ConnectVerdict | undefined>): Promise<GateResult> {
    const hook = this.node.connectHook;
    if (!this.auth) return hook ? this.hookResult(await ask(hook)) : { ok: true, identity: ANONYMOUS };
    const result = await this.auth.authenticate(req);
    if (result.ok) {
      if (!this.node.revoked?.(result.identity)) return result;
      return { ok: false, status: UpgradeStatus.UNAUTHORIZED, reason: 'token revoked', by: 'token', headers: BEARER };
    }
    // With a connect hook, a request without a valid JWT is the hook's to decide.
    if (hook) return this.hookResult(await ask(hook));
    return {
      ok: false,
      status: result.status,
      reason: result.reason,
      by: 'token',
      headers: result.status === UpgradeStatus.UNAUTHORIZED ? BEARER : RETRY_AFTER,
    };
  }

  /** Asks the connect hook about a pending upgrade, reading its socket meanwhile; undefined when the client left before. */
  private async askForUpgrade(hook: ConnectHook, req: IncomingMessage, client: string): Promise<ConnectVerdict | undefined> {
    const hold = (req.socket as HeldSocket)[kHold];
    // Gone while the JWT was checked: nobody to ask for.
    if (!hold || req.socket.destroyed) return undefined;
    hold.abort = new AbortController();
    // Read the socket meanwhile, or a client that hangs up goes unnoticed until the answer.
    req.socket.on('data', onHeldData);
    req.socket.once('end', onHeldEnd);
    const verdict = await hook.connect(connectRequest(req, client, hold.ip), { address: hold.ip, signal: hold.abort.signal });
    hold.abort = undefined;
    return verdict;
  }

  /**
   * The connect hook decides: 200 admits with its identity, 401/403 refuse (with the back end's
   * cleaned `reason`, src/hooks/reason.ts), anything else is 503 (its detail stays in the log).
   */
  private hookResult(verdict: ConnectVerdict | undefined): GateResult {
    if (!verdict) return { ok: false, status: UpgradeStatus.UNAVAILABLE, reason: 'the client went away', by: 'node' };
    switch (verdict.kind) {
      case 'admit': {
        const { user, channels, publish, meta, expiresAt } = verdict;
        return { ok: true, identity: Object.freeze({ user, channels, publish, meta, expiresAt, via: 'hook' as const }) };
      }
      case 'refuse': {
        const headers = verdict.status === 401 && this.auth ? BEARER : undefined;
        const reason = `the back end refused the connection${verdict.reason ? `: ${verdict.reason}` : ''}`;
        return { ok: false, status: verdict.status, reason, by: 'connect_hook', ...(headers ? { headers } : {}) };
      }
      case 'unavailable':
        return { ok: false, status: UpgradeStatus.UNAVAILABLE, reason: 'the connect hook failed', by: 'connect_hook', headers: RETRY_AFTER };
    }
  }

  /**
   * The caps (node state, --max-connections, --max-connections-per-ip counting open sockets and
   * pending upgrades); undefined admits. Checked when the request arrives and again, synchronously,
   * right before the 101: the node may have started draining while a JWKS fetch or the connect
   * hook was awaited. A refusal ends the request's hold on its address's count.
   */
  admit(req: IncomingMessage): GateRefusal | undefined {
    const refusal = this.capped(req);
    if (refusal) this.release(req.socket);
    return refusal;
  }

  private capped(req: IncomingMessage): GateRefusal | undefined {
    if (!this.node.accepting()) return { ok: false, status: UpgradeStatus.UNAVAILABLE, reason: 'node is not accepting connections', by: 'node', headers: RETRY_AFTER };
    const { maxConnections, maxConnectionsPerIp } = this.node.config;
    if (maxConnections > 0 && this.node.clientCount() >= maxConnections) {
      return { ok: false, status: UpgradeStatus.UNAVAILABLE, reason: 'too many connections on this node', by: 'limit', headers: RETRY_AFTER };
    }
    // This request's own hold, once it has one, is not one of the others.
    const own = (req.socket as HeldSocket)[kHold] ? 1 : 0;
    if (maxConnectionsPerIp > 0 && this.perIp.count(this.ipOf(req)) - own >= maxConnectionsPerIp) {
      return { ok: false, status: UpgradeStatus.TOO_MANY_REQUESTS, reason: 'too many connections from this address', by: 'limit', headers: RETRY_AFTER };
    }
    return undefined;
  }

  /** Counts a pending upgrade towards its address until {@link release}. */
  private hold(req: IncomingMessage): void {
    const socket = req.socket as HeldSocket;
    const ip = this.ipOf(req);
    this.perIp.add(ip);
    socket[kHold] = { gate: this, ip, abort: undefined, early: undefined, earlyBytes: 0 };
    socket.once('close', onHeldClose);
  }

  /**
   * Ends an admitted upgrade's hold right before `ws` takes its socket (in the same turn, so no
   * byte is read in between), and gives the bytes to hand `ws` as the upgrade's head: `head`,
   * then what the client sent while it waited. {@link opened} counts the connection from then on.
   */
  handOver(req: IncomingMessage, head: Buffer): Buffer {
    const early = this.release(req.socket);
    return early ? Buffer.concat([head, ...early]) : head;
  }

  /** Ends a pending upgrade's hold (admitted, refused, or its socket closed) and gives what it read early; safe twice. @internal */
  release(socket: Duplex): Buffer[] | undefined {
    const held = socket as HeldSocket;
    const hold = held[kHold];
    if (!hold) return undefined;
    held[kHold] = undefined;
    socket.off('close', onHeldClose);
    socket.off('end', onHeldEnd);
    socket.off('data', onHeldData);
    this.perIp.remove(hold.ip);
    return hold.early;
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

  /** An admitted socket (its hold ended at {@link handOver}) counts as an open connection. */
  opened(client: Client): void {
    this.perIp.add(client.ip);
    this.lifetime.track(client);
  }

  closed(client: Client): void {
    this.perIp.remove(client.ip);
    this.lifetime.untrack(client);
  }

  stop(): void {
    this.lifetime.stop();
  }
}

/**
 * The connect hook's body: the request's query (each parameter once, its first value) and only
 * the cookie, authorization and user-agent headers, each left out when absent. The query is an
 * object without a prototype, so every name is a plain key: `__proto__`, `constructor` or
 * `toString` reach the back end like any other.
 */
export function connectRequest(req: IncomingMessage, client: string, ip: string): ConnectRequest {
  const url = req.url ?? '';
  const q = url.indexOf('?');
  const query = Object.create(null) as Record<string, string>;
  if (q !== -1) for (const [key, value] of new URLSearchParams(url.slice(q + 1))) if (!Object.hasOwn(query, key)) query[key] = value;
  const { cookie, authorization } = req.headers;
  const userAgent = req.headers['user-agent'];
  return {
    client,
    ip,
    origin: req.headers.origin ?? null,
    path: pathOf(url),
    query,
    headers: {
      ...(cookie !== undefined ? { cookie } : {}),
      ...(authorization !== undefined ? { authorization } : {}),
      ...(userAgent !== undefined ? { 'user-agent': userAgent } : {}),
    },
  };
}
