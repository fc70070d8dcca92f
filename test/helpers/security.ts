/** Helpers for the security tests: tokens, a test endpoint that reports identities, PEM files, certificates. */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import { pino } from 'pino';
import type { Client } from '../../src/transport/client.js';
import type { Endpoint } from '../../src/node/endpoint.js';
import type { FanoutNode } from '../../src/app.js';
import { frameText } from '../../src/node/outbox.js';
import type { RawPeer } from './raw-ws.js';
import type { TestClient } from './ws-client.js';

export const SECRET = 'test-secret-that-is-long-enough-for-hs256';

/** Signs a token; `exp` in seconds from now (negative: already expired). */
export function sign(
  claims: Record<string, unknown>,
  options: { key?: Uint8Array | KeyObject; alg?: string; kid?: string; sub?: string | null; exp?: number; iss?: string; aud?: string } = {},
): Promise<string> {
  let jwt = new SignJWT(claims).setProtectedHeader({ alg: options.alg ?? 'HS256', ...(options.kid ? { kid: options.kid } : {}) }).setIssuedAt();
  if (options.sub !== null) jwt = jwt.setSubject(options.sub ?? 'alice');
  jwt = jwt.setExpirationTime(Math.floor(Date.now() / 1000) + (options.exp ?? 3600));
  if (options.iss) jwt = jwt.setIssuer(options.iss);
  if (options.aud) jwt = jwt.setAudience(options.aud);
  return jwt.sign(options.key ?? new TextEncoder().encode(SECRET));
}

/** An unsigned `alg: none` token, which must never be accepted. */
export function unsignedToken(claims: Record<string, unknown>): string {
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  return `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ sub: 'mallory', exp: Math.floor(Date.now() / 1000) + 3600, ...claims })}.`;
}

export const WHOAMI_PATH = '/ws/whoami';

/** A test endpoint: on open it sends the identity the gate handed to the node, as JSON. */
export class WhoamiEndpoint implements Endpoint {
  readonly path = WHOAMI_PATH;
  /** Messages over the rate limit that reached rateLimited(). */
  limited = 0;
  constructor(private readonly node: FanoutNode) {}
  open(client: Client): void {
    const { user, channels, expiresAt } = client.identity;
    this.node.outbox.send(client, frameText(JSON.stringify({ type: 'whoami', user, channels, expiresAt, ip: client.ip })));
  }
  message(client: Client, data: Buffer): void {
    this.node.outbox.send(client, frameText(data));
  }
  rateLimited(client: Client): void {
    this.limited++;
    this.node.outbox.send(client, frameText(JSON.stringify({ type: 'error', code: 'rate_limited' })));
  }
  close(): void {}
}

/** A temporary directory removed by `cleanup`. */
export function tempDir(): { dir: string; file: (name: string, data: string | Buffer) => string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'fanout-sec-'));
  return {
    dir,
    file: (name, data) => {
      const path = join(dir, name);
      writeFileSync(path, data);
      return path;
    },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** RSA and P-256 key pairs, with the public key as PEM. */
export function keyPair(kind: 'rsa' | 'ec'): { privateKey: KeyObject; publicKey: KeyObject; publicPem: string } {
  const { privateKey, publicKey } =
    kind === 'rsa' ? generateKeyPairSync('rsa', { modulusLength: 2048 }) : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { privateKey, publicKey, publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString() };
}

/** A self-signed certificate for localhost/127.0.0.1 made with openssl: cert, key and both in one PEM (HAProxy). */
export function selfSignedCert(dir: string): { cert: string; key: string; combined: string } {
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'],
    { stdio: 'ignore' },
  );
  const combined = join(dir, 'combined.pem');
  execFileSync('sh', ['-c', `cat "${cert}" "${key}" > "${combined}"`]);
  return { cert, key, combined };
}

/** A pino logger that keeps every line as an object, for tests that read the logs. */
export function captureLogger(): { logger: import('pino').Logger; lines: Array<Record<string, unknown>>; text: () => string } {
  const raw: string[] = [];
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino(
    { level: 'debug' },
    {
      write(line: string) {
        raw.push(line);
        lines.push(JSON.parse(line) as Record<string, unknown>);
      },
    },
  );
  return { logger, lines, text: () => raw.join('') };
}

/**
 * The heartbeat's user-visible outcome: `dead` (a raw peer that reads pings and never answers)
 * gets a ping and is cut; `live` (a ws client, which answers pings) is not closed and still talks
 * on /ws/echo.
 */
export async function expectSilentPeerCutLiveStays(dead: RawPeer, live: TestClient): Promise<void> {
  await dead.until(() => dead.pings >= 1, 5000, 'a ping');
  await dead.until(() => dead.ended, 5000, 'the silent peer to be cut');
  assert.equal(live.closeCode, undefined);
  live.send('still here');
  await live.until((m) => m.includes('Received: still here'));
}
