/**
 * How WebSocket clients authenticate, decided at load from --jwt-secret, --jwt-public-key and
 * --jwks-url (at most one). The public key file is read and parsed here, so the transport does no
 * file I/O and a bad key stops the node before it starts. The accepted algorithms are pinned to
 * the key source (see transport/auth.ts).
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { ConfigError } from '../errors.js';
import { firstLine, readPem } from './files.js';

/** The key source JWTs are verified with; `anonymous`: no JWT is asked for. */
export type AuthMode =
  | { readonly kind: 'anonymous' }
  /** --jwt-secret: HS256 with these bytes. */
  | { readonly kind: 'secret'; readonly key: Uint8Array; readonly algorithm: 'HS256' }
  /** --jwt-public-key: RS256 for an RSA key, ES256 for a P-256 key. */
  | { readonly kind: 'public-key'; readonly key: KeyObject; readonly algorithm: 'RS256' | 'ES256' }
  /** --jwks-url: a remote key set, RS256 or ES256, keys picked by `kid`. */
  | { readonly kind: 'jwks'; readonly url: URL };

/** The raw key options, as the flags give them. */
export interface AuthOptions {
  readonly jwtSecret?: string | undefined;
  readonly jwtPublicKey?: string | undefined;
  readonly jwksUrl?: string | undefined;
}

/** Builds the mode; throws a ConfigError naming the flag for two key sources or a bad key file. */
export function authMode(options: AuthOptions): AuthMode {
  const given = [options.jwtSecret, options.jwtPublicKey, options.jwksUrl].filter((k) => k !== undefined);
  if (given.length > 1) throw new ConfigError('--jwt-secret', 'give only one of --jwt-secret, --jwt-public-key and --jwks-url');
  if (options.jwtSecret !== undefined) {
    return Object.freeze({ kind: 'secret', key: new TextEncoder().encode(options.jwtSecret), algorithm: 'HS256' });
  }
  if (options.jwtPublicKey !== undefined) return Object.freeze({ kind: 'public-key', ...readPublicKey(options.jwtPublicKey) });
  if (options.jwksUrl !== undefined) return Object.freeze({ kind: 'jwks', url: new URL(options.jwksUrl) });
  return Object.freeze({ kind: 'anonymous' });
}

/**
 * Reads an RSA or P-256 public key (or a certificate holding one) from a PEM file. A private key
 * is refused: a node needs only the public half, and a private key on a node's disk is one more
 * place it can leak from (docs/security.md).
 */
export function readPublicKey(file: string): { key: KeyObject; algorithm: 'RS256' | 'ES256' } {
  const pem = readPem(file, '--jwt-public-key');
  if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(pem.toString())) {
    throw new ConfigError('--jwt-public-key', `${file} holds a private key; give the public key (openssl pkey -in ${file} -pubout)`);
  }
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch (err) {
    throw new ConfigError('--jwt-public-key', `cannot read a PEM public key from ${file}: ${firstLine(err)}`);
  }
  if (key.asymmetricKeyType === 'rsa') return { key, algorithm: 'RS256' };
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return { key, algorithm: 'ES256' };
  throw new ConfigError('--jwt-public-key', `expected an RSA or P-256 EC public key, got ${key.asymmetricKeyType ?? 'unknown'}`);
}
