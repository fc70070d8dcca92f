/**
 * Tokens over the socket (docs/auth.md): the connection's `refresh` with a new JWT, and
 * subscription tokens, JWTs that let one connection subscribe to one channel its patterns do not
 * allow, until their `exp`.
 *
 * Tokens are verified as an upgrade's are (the gate's key and `--jwt-issuer`/`--jwt-audience`,
 * src/transport/auth.ts). A subscription token must name the connection's user (`sub`), the
 * channel (`channel`) and expire (`exp`). Token-held subscriptions are swept once a second by one
 * timer per node (no timer per subscription); one that expired unrefreshed is dropped alone.
 */
import { TIMINGS } from '../config/defaults.js';
import { encodeRefreshed } from '../protocol/encode.js';
import type { ErrorCode, RefreshFrame } from '../protocol/frames.js';
import { identityOf, type TokenCheck } from '../transport/auth.js';
import type { Client, Identity } from '../transport/client.js';
import type { ChannelRuntime } from './runtime.js';
import { subscriptionsOf, type Subscription } from './subscriptions.js';

/** What the channel endpoint uses of the node's identity handling (the gate's, src/transport). */
export interface IdentityAuthority {
  /** Verifies a token sent over the socket; undefined when the node takes no tokens (no --jwt-*). */
  verify(token: string): Promise<TokenCheck> | undefined;
  /** Replaces `client`'s identity with a refreshed one of the same user (src/transport/lifetime.ts). */
  renew(client: Client, identity: Identity): void;
}

/** A token that does not do: the error code (`unauthorized`, or `unavailable` when the key set cannot be fetched) and why. */
export interface TokenRefusal {
  readonly ok: false;
  readonly code: ErrorCode;
  readonly message: string;
}

/** Unix seconds of a time in ms (what frames carry); undefined stays undefined. */
export function unixSeconds(ms: number | undefined): number | undefined {
  return ms === undefined ? undefined : Math.floor(ms / 1000);
}

/** What the `refresh` handlers use of the channel endpoint. */
export interface TokenHost {
  readonly runtime: Pick<ChannelRuntime, 'send' | 'error'>;
  readonly tokens: TokenSubscriptions;
  authority(): IdentityAuthority | undefined;
}

/** `refresh` without a channel: a new JWT of the same user becomes the connection's identity (its renewal drops what it no longer allows). */
export async function refreshConnection(host: TokenHost, client: Client, frame: RefreshFrame): Promise<void> {
  const authority = host.authority();
  const checked = await checkConnectionToken(authority, client, frame.token);
  if (!client.open) return;
  if (!checked.ok) return host.runtime.error(client, checked.code, checked.message, frame.id);
  authority!.renew(client, checked.identity);
  host.runtime.send(client, encodeRefreshed({ type: 'refreshed', id: frame.id, expires: unixSeconds(checked.identity.expiresAt) }));
}

/** `refresh` with a channel: a new subscription token for a token-held subscription extends it. */
export async function refreshSubscription(host: TokenHost, client: Client, frame: RefreshFrame, channel: string): Promise<void> {
  const { id } = frame;
  const { runtime } = host;
  const held = subscriptionsOf(client).get(channel);
  if (!held || held.grant !== 'token') return runtime.error(client, 'not_found', `no subscription to ${channel} held by a subscription token`, id, channel);
  const checked = await checkSubscriptionToken(host.authority(), client, channel, frame.token);
  if (!client.open) return;
  if (!checked.ok) return runtime.error(client, checked.code, checked.message, id, channel);
  // Unsubscribed (or expired) meanwhile: nothing to extend.
  if (subscriptionsOf(client).get(channel) !== held) return runtime.error(client, 'not_found', `not subscribed to ${channel}`, id, channel);
  host.tokens.hold(held, checked.expiresAt);
  runtime.send(client, encodeRefreshed({ type: 'refreshed', id, channel, expires: unixSeconds(checked.expiresAt) }));
}

/** A new connection token: the identity it gives, when it is valid and of the same user. */
export async function checkConnectionToken(
  authority: IdentityAuthority | undefined,
  client: Client,
  token: string,
): Promise<{ readonly ok: true; readonly identity: Identity } | TokenRefusal> {
  const checked = await verified(authority, token);
  if (!checked.ok) return checked;
  const result = identityOf(checked.payload);
  if (!result.ok) return refusal(`token refused: ${result.reason}`);
  if (client.identity.user === undefined || result.identity.user !== client.identity.user) {
    return refusal('token refused: its sub is not the connection\'s user (reconnect to change users)');
  }
  return { ok: true, identity: result.identity };
}

/** A subscription token for `channel`: its end (ms since the epoch), when it is valid for this connection. */
export async function checkSubscriptionToken(
  authority: IdentityAuthority | undefined,
  client: Client,
  channel: string,
  token: string,
): Promise<{ readonly ok: true; readonly expiresAt: number } | TokenRefusal> {
  const checked = await verified(authority, token);
  if (!checked.ok) return checked;
  const { sub, exp } = checked.payload;
  if (client.identity.user === undefined || sub !== client.identity.user) return refusal('subscription token refused: its sub is not the connection\'s user');
  if (checked.payload['channel'] !== channel) return refusal(`subscription token refused: its channel claim is not ${channel}`);
  if (typeof exp !== 'number') return refusal('subscription token refused: it has no exp');
  return { ok: true, expiresAt: exp * 1000 };
}

async function verified(authority: IdentityAuthority | undefined, token: string): Promise<Extract<TokenCheck, { ok: true }> | TokenRefusal> {
  const check = authority?.verify(token);
  if (!check) return refusal('this node takes no tokens (it has no --jwt-*)');
  const result = await check;
  if (result.ok) return result;
  if (result.status === 503) return { ok: false, code: 'unavailable', message: 'cannot verify tokens now (the key set is unavailable); retry' };
  return refusal(`token refused: ${result.reason}`);
}

function refusal(message: string): TokenRefusal {
  return { ok: false, code: 'unauthorized', message };
}

/**
 * The node's token-held subscriptions, swept once a second: one whose token's `exp` passed is
 * handed to `expired` (which drops it). A subscription leaves the set when it ends for any reason
 * ({@link release}), so the set holds only live ones.
 */
export class TokenSubscriptions {
  private readonly held = new Set<Subscription>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly expired: (sub: Subscription) => void) {}

  /** `sub` is held by a token until `expiresAt` (a refresh calls this again with the new end). */
  hold(sub: Subscription, expiresAt: number): void {
    sub.grant = 'token';
    sub.expiresAt = expiresAt;
    this.held.add(sub);
    this.timer ??= setInterval(() => this.sweep(), TIMINGS.expirySweepMs).unref();
  }

  release(sub: Subscription): void {
    this.held.delete(sub);
  }

  /** Token-held subscriptions now (for tests and metrics). */
  get size(): number {
    return this.held.size;
  }

  sweep(now = Date.now()): void {
    for (const sub of this.held) {
      if (sub.expiresAt! > now) continue;
      this.held.delete(sub);
      this.expired(sub);
    }
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.held.clear();
  }
}
