/**
 * The lifetime of each connection's identity after the upgrade (docs/auth.md): it ends at its
 * `expiresAt` (the JWT's `exp`, the connect hook's `expires_at`) with 4001, unless it is renewed
 * first — by a `refresh` frame with a new JWT (the channel endpoint verifies it and calls
 * {@link IdentityLifetime.renew}), or, for a session the connect hook admitted, by --refresh-hook,
 * which this module asks shortly before the end.
 *
 * Bounded: one sweep per node every second (TIMINGS.expirySweepMs) over the connections that
 * expire, no timer per connection; at most one refresh-hook call per connection in flight, each
 * drawn on the hooks' established-clients share (src/hooks/shares.ts), so no client can multiply
 * timers or calls. A failed call is asked again every {@link REFRESH_RETRY_MS} until the session
 * expires.
 */
import { TIMINGS } from '../config/defaults.js';
import { CloseCode } from '../errors.js';
import type { HookCall, HookCaller, RefreshVerdict } from '../hooks/hooks.js';
import type { Logger } from '../logger.js';
import type { Client, Identity } from './client.js';

/**
 * How long before a session's end --refresh-hook is asked: a fifth of its lifetime, at least
 * {@link REFRESH_LEAD_MIN_MS} (room for a few retries), at most {@link REFRESH_LEAD_MAX_MS}, and
 * never more than half the lifetime (a short session is not asked the moment it starts).
 */
export const REFRESH_LEAD_FRACTION = 0.2;
export const REFRESH_LEAD_MIN_MS = 5000;
export const REFRESH_LEAD_MAX_MS = 60_000;
/**
 * A refresh-hook call that failed (error, timeout, overloaded) is asked again at the first sweep
 * at least this long after, until the session expires: about once a second per session at most.
 */
export const REFRESH_RETRY_MS = 500;

/** --refresh-hook, as the lifetime calls it (src/hooks). */
export interface RefreshHook {
  refresh(caller: HookCaller, on: HookCall): Promise<RefreshVerdict>;
}

/** What the lifetime needs from its node. */
export interface LifetimeHost {
  readonly logger: Logger;
  /** --refresh-hook, when configured. */
  readonly refreshHook?: RefreshHook | undefined;
  /** Writes every socket's queued frames now (so they go out ahead of a close frame). */
  flush(): void;
  /** `client`'s identity was replaced: its endpoint drops what the new one no longer allows. */
  renewed(client: Client, previous: Identity): void;
}

/** A hook-admitted session's refresh state: when its current `expires_at` was set, and its call. */
interface HookSession {
  since: number;
  retryAt: number;
  asking: AbortController | undefined;
}

export class IdentityLifetime {
  /** Open sockets whose identity expires. */
  private readonly expiring = new Set<Client>();
  /** Those of them the refresh hook renews. */
  private readonly sessions = new Map<Client, HookSession>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly host: LifetimeHost) {}

  /** An admitted socket: watched while its identity expires. */
  track(client: Client, now = Date.now()): void {
    this.watch(client, now);
  }

  /** The socket closed. */
  untrack(client: Client): void {
    this.expiring.delete(client);
    this.sessions.get(client)?.asking?.abort();
    this.sessions.delete(client);
  }

  /**
   * Replaces `client`'s identity (a valid refresh), watches its new expiry and tells its endpoint.
   * The caller vouches that it is the same user.
   */
  renew(client: Client, identity: Identity, now = Date.now()): void {
    const previous = client.identity;
    client.identity = identity;
    this.sessions.get(client)?.asking?.abort();
    this.sessions.delete(client);
    this.expiring.delete(client);
    this.watch(client, now);
    this.host.renewed(client, previous);
  }

  /** Closes every socket whose identity expired with 4001; asks --refresh-hook about sessions near their end. */
  sweep(now = Date.now()): void {
    let flushed = false;
    for (const client of this.expiring) {
      const expiresAt = client.identity.expiresAt!;
      if (expiresAt > now) {
        const session = this.sessions.get(client);
        if (session && !session.asking && now >= Math.max(session.retryAt, refreshAt(session.since, expiresAt))) this.ask(client, session);
        continue;
      }
      this.untrack(client);
      // What was queued for it before the expiry still goes out ahead of the close frame.
      if (!flushed) this.host.flush();
      flushed = true;
      const what = client.identity.via === 'hook' ? 'session' : 'token';
      this.host.logger.info({ client: client.id, ip: client.ip, origin: client.origin, user: client.identity.user }, `${what} expired; closing`);
      client.ws.close(CloseCode.TOKEN_EXPIRED, `${what} expired`);
    }
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    for (const session of this.sessions.values()) session.asking?.abort();
    this.sessions.clear();
    this.expiring.clear();
  }

  private watch(client: Client, now: number): void {
    const { expiresAt, via } = client.identity;
    if (expiresAt === undefined) return;
    this.expiring.add(client);
    if (via === 'hook' && this.host.refreshHook) this.sessions.set(client, { since: now, retryAt: 0, asking: undefined });
    this.timer ??= setInterval(() => this.sweep(), TIMINGS.expirySweepMs).unref();
  }

  /** One refresh-hook call for `client`'s session; its verdict extends, ends (4003) or leaves it for a retry. */
  private ask(client: Client, session: HookSession): void {
    const hook = this.host.refreshHook!;
    const asking = new AbortController();
    session.asking = asking;
    const { user, meta } = client.identity;
    hook
      .refresh({ client: client.id, user, meta }, { address: client.ip, signal: asking.signal })
      .then((verdict) => {
        // Closed, renewed by a JWT or stopped meanwhile: this answer is about nothing any more.
        if (session.asking !== asking || this.sessions.get(client) !== session || !client.open) return;
        session.asking = undefined;
        if (verdict.kind === 'unavailable') {
          session.retryAt = Date.now() + REFRESH_RETRY_MS;
          return;
        }
        if (verdict.kind === 'refuse') return this.refused(client, verdict.reason);
        const old = client.identity;
        this.renew(
          client,
          Object.freeze({
            user: old.user,
            channels: verdict.channels ?? old.channels,
            publish: verdict.publish ?? old.publish,
            meta: verdict.meta ?? old.meta,
            expiresAt: verdict.expiresAt,
            via: 'hook' as const,
          }),
        );
      })
      .catch((err: unknown) => this.host.logger.error({ err, client: client.id }, 'refresh hook call failed'));
  }

  private refused(client: Client, reason: string | undefined): void {
    this.untrack(client);
    this.host.flush();
    this.host.logger.info({ client: client.id, ip: client.ip, user: client.identity.user }, 'refresh hook refused the session; closing');
    // A close reason is at most 123 bytes; the hook's reason is cleaned and short (src/hooks/reason.ts).
    client.ws.close(CloseCode.REFUSED, truncate(`session refused${reason ? `: ${reason}` : ''}`, 120));
  }
}

/** When --refresh-hook is asked about a session set at `since` that ends at `expiresAt`. */
export function refreshAt(since: number, expiresAt: number): number {
  const lifetime = expiresAt - since;
  return expiresAt - Math.min(REFRESH_LEAD_MAX_MS, lifetime / 2, Math.max(REFRESH_LEAD_MIN_MS, lifetime * REFRESH_LEAD_FRACTION));
}

/** `text` within `max` UTF-8 bytes. */
function truncate(text: string, max: number): string {
  let out = text;
  while (Buffer.byteLength(out) > max) out = out.slice(0, -1);
  return out;
}
