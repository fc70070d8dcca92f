/**
 * JWT authentication before the upgrade, verified with `jose`.
 *
 * One key source is configured: --jwt-secret (HS256), --jwt-public-key (RS256 or ES256 PEM, the
 * algorithm follows the key type) or --jwks-url (a remote key set, fetched once and cached by
 * jose, keys picked by `kid`); the key is read and checked at load (config/auth-mode.ts). The
 * accepted algorithms are pinned to the key source, so a token signed with another algorithm (or
 * `alg: none`) is refused, never "verified" with the wrong key.
 *
 * The token is read from `Authorization: Bearer …`, the `token` query parameter (browsers cannot
 * set headers on a WebSocket) or the `fanout_token` cookie, in that order. It is never logged.
 */
import type { KeyObject } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { createRemoteJWKSet, errors, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { TIMINGS, type Config } from '../config/schema.js';
import { patternsProblem } from '../protocol/patterns.js';
import type { Identity } from './client.js';

/** The cookie a browser app can set to authenticate WebSockets. */
export const TOKEN_COOKIE = 'fanout_token';
/** Longest token accepted, so a huge query string or cookie costs nothing to refuse. */
export const MAX_TOKEN_LENGTH = 8192;

/** A refusal is 401 (the token) or 503 (the key set could not be fetched: retry later). */
export type AuthResult =
  | { readonly ok: true; readonly identity: Identity }
  | { readonly ok: false; readonly status: 401 | 503; readonly reason: string };

/** A token's verified claims, or why it is refused (401, or 503 when the key set cannot be fetched). */
export type TokenCheck =
  | { readonly ok: true; readonly payload: JWTPayload }
  | { readonly ok: false; readonly status: 401 | 503; readonly reason: string };

export interface Authenticator {
  /** Verifies the request's token; never throws. */
  authenticate(req: IncomingMessage): Promise<AuthResult>;
  /** Verifies a token given over the socket (`refresh`, a subscription token) as an upgrade's is; never throws. */
  verify(token: string): Promise<TokenCheck>;
}

/** Builds the authenticator, or undefined when no key is configured (anonymous clients). */
export function createAuthenticator(config: Pick<Config, 'auth' | 'jwtIssuer' | 'jwtAudience'>): Authenticator | undefined {
  const options = { issuer: config.jwtIssuer, audience: config.jwtAudience };
  const { auth } = config;
  switch (auth.kind) {
    case 'anonymous':
      return undefined;
    case 'secret':
    case 'public-key':
      return new JwtAuthenticator(auth.key, { ...options, algorithms: [auth.algorithm] });
    case 'jwks': {
      const jwks = createRemoteJWKSet(auth.url, {
        timeoutDuration: TIMINGS.jwksTimeoutMs,
        cooldownDuration: TIMINGS.jwksCooldownMs,
        cacheMaxAge: TIMINGS.jwksCacheMaxAgeMs,
      });
      return new JwtAuthenticator(jwks, { ...options, algorithms: ['RS256', 'ES256'] });
    }
  }
}

interface VerifyOptions {
  readonly issuer: string | undefined;
  readonly audience: string | undefined;
  readonly algorithms: string[];
}

class JwtAuthenticator implements Authenticator {
  constructor(
    private readonly key: Uint8Array | KeyObject | JWTVerifyGetKey,
    private readonly options: VerifyOptions,
  ) {}

  async authenticate(req: IncomingMessage): Promise<AuthResult> {
    const token = tokenOf(req);
    if (token === undefined) return { ok: false, status: 401, reason: 'missing token' };
    const check = await this.verify(token);
    return check.ok ? identityOf(check.payload) : check;
  }

  async verify(token: string): Promise<TokenCheck> {
    if (token.length > MAX_TOKEN_LENGTH || !/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(token)) {
      return { ok: false, status: 401, reason: 'malformed token' };
    }
    let payload: JWTPayload;
    try {
      const verifyOptions = {
        algorithms: this.options.algorithms,
        ...(this.options.issuer !== undefined ? { issuer: this.options.issuer } : {}),
        ...(this.options.audience !== undefined ? { audience: this.options.audience } : {}),
      };
      // Overloads of jwtVerify differ by key kind; each branch is the same call.
      const result =
        typeof this.key === 'function'
          ? await jwtVerify(token, this.key, verifyOptions)
          : await jwtVerify(token, this.key, verifyOptions);
      payload = result.payload;
    } catch (err) {
      const reason = describe(err);
      return { ok: false, status: reason === KEYS_UNAVAILABLE ? 503 : 401, reason };
    }
    return { ok: true, payload };
  }
}

/**
 * The claims → the node's Identity; a token without a string `sub` or with a bad `channels` or
 * `publish` claim is refused. `publish`, when given, lists the channels it may publish to
 * (otherwise `channels` covers publishing too).
 */
export function identityOf(payload: JWTPayload): AuthResult {
  if (typeof payload.sub !== 'string' || payload.sub.length === 0) return { ok: false, status: 401, reason: 'token has no sub' };
  const channels = patternsClaim(payload, 'channels');
  if (typeof channels === 'string') return { ok: false, status: 401, reason: channels };
  const publish = patternsClaim(payload, 'publish');
  if (typeof publish === 'string') return { ok: false, status: 401, reason: publish };
  const expiresAt = typeof payload.exp === 'number' ? payload.exp * 1000 : undefined;
  // What revocation compares (docs/auth.md, "Revocation"): kept only when present and sane.
  const tokenId = typeof payload.jti === 'string' && payload.jti.length > 0 && payload.jti.length <= 256 ? payload.jti : undefined;
  const issuedAt = typeof payload.iat === 'number' && Number.isFinite(payload.iat) ? payload.iat : undefined;
  return {
    ok: true,
    identity: Object.freeze({
      user: payload.sub,
      channels,
      ...(publish ? { publish } : {}),
      expiresAt,
      via: 'token' as const,
      ...(tokenId !== undefined ? { tokenId } : {}),
      ...(issuedAt !== undefined ? { issuedAt } : {}),
    }),
  };
}

/** A claim of channel patterns (a list of strings, or one comma-separated string); a string result is what is wrong. */
function patternsClaim(payload: JWTPayload, name: 'channels' | 'publish'): readonly string[] | undefined | string {
  const claim = payload[name];
  let list: string[];
  if (claim === undefined) return undefined;
  if (typeof claim === 'string') list = claim.split(',').map((c) => c.trim()).filter(Boolean);
  else if (Array.isArray(claim) && claim.every((c): c is string => typeof c === 'string')) list = [...claim];
  else return `${name} claim is not a list of strings`;
  const problem = patternsProblem(list);
  if (problem) return `${name} claim: ${problem}`;
  return Object.freeze(list);
}

/** The token from the Authorization header, the `token` query parameter or the cookie. */
export function tokenOf(req: IncomingMessage): string | undefined {
  const header = req.headers.authorization;
  if (header !== undefined) {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
    return m ? m[1] : '';
  }
  const url = req.url ?? '';
  const q = url.indexOf('?');
  if (q !== -1) {
    const token = new URLSearchParams(url.slice(q + 1)).get('token');
    if (token !== null) return token;
  }
  const cookie = req.headers.cookie;
  if (cookie !== undefined) {
    for (const part of cookie.split(';')) {
      const eq = part.indexOf('=');
      if (eq !== -1 && part.slice(0, eq).trim() === TOKEN_COOKIE) return part.slice(eq + 1).trim();
    }
  }
  return undefined;
}

const KEYS_UNAVAILABLE = 'key set unavailable';

/** A short, token-free reason for logs and the 401 body. */
function describe(err: unknown): string {
  if (err instanceof errors.JWTExpired) return 'token expired';
  if (err instanceof errors.JOSEAlgNotAllowed) return 'token algorithm not allowed';
  if (err instanceof errors.JWSSignatureVerificationFailed) return 'bad token signature';
  if (err instanceof errors.JWTClaimValidationFailed) return `token claim ${err.claim} rejected`;
  if (err instanceof errors.JWKSNoMatchingKey) return 'no key for the token';
  if (err instanceof errors.JWKSTimeout || err instanceof errors.JWKSInvalid) return KEYS_UNAVAILABLE;
  // jose's JWKS fetch reports a non-200 answer as a generic JOSEError.
  if (err instanceof errors.JOSEError && err.code === 'ERR_JOSE_GENERIC') return KEYS_UNAVAILABLE;
  if (err instanceof errors.JOSEError) return 'invalid token';
  // Not a JOSE error: the JWKS fetch itself failed (connection refused, bad status, bad JSON).
  return KEYS_UNAVAILABLE;
}
