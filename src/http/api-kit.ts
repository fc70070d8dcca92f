/**
 * What every HTTP API route shares (api.ts, users-api.ts): the --api-key check, error answers with
 * the registry's statuses, and reading a body within a cap without reading a refused one.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { httpStatusOf, type ApiErrorCode } from '../errors.js';
import { sendJson } from '../transport/router.js';

/** True when the request may go on; otherwise the answer has been sent. */
export type Authorized = (req: IncomingMessage, res: ServerResponse) => boolean;

/** The check of `Authorization: Bearer <--api-key>` (404 when the API is off, 401 for a wrong key). */
export function apiKeyCheck(key: string | undefined): Authorized {
  const keyHash = key === undefined ? undefined : sha256(key);
  return (req, res) => {
    if (!keyHash) {
      fail(res, 'not_found', 'the HTTP API is off: start the node with --api-key', { connection: 'close' });
      return false;
    }
    const header = req.headers.authorization ?? '';
    const given = /^Bearer +(.+)$/i.exec(header)?.[1];
    if (given === undefined || !timingSafeEqual(sha256(given), keyHash)) {
      fail(res, 'unauthorized', 'send Authorization: Bearer <--api-key>', { 'www-authenticate': 'Bearer', connection: 'close' });
      return false;
    }
    return true;
  };
}

/** An error answer: the status is the registry's for `error` (protocol/codes.ts). */
export function fail(res: ServerResponse, error: ApiErrorCode, message: string, headers: Record<string, string> = {}): void {
  sendJson(res, httpStatusOf(error), { error, message }, headers);
}

/** An unexpected failure: the caller hears `internal`, never the error's own text; the router logs it. */
export function internal(res: ServerResponse, err: unknown): never {
  fail(res, 'internal', 'the server failed to answer this request');
  throw err;
}

/** A query parameter as a whole number: undefined when absent, null when not a whole number >= 0. */
export function wholeNumber(text: string | null): number | undefined | null {
  if (text === null) return undefined;
  const n = Number(text);
  return text !== '' && Number.isSafeInteger(n) && n >= 0 ? n : null;
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

/** How long a refused upload's connection lingers after the answer, so the answer is read before the socket closes. */
const REFUSED_LINGER_MS = 1000;

/** Answers without reading the body further, then closes the connection. */
export function refuse(req: IncomingMessage, res: ServerResponse, error: ApiErrorCode, message: string): void {
  fail(res, error, message, { connection: 'close' });
  hangUp(req, res);
}

/**
 * After an answer sent before the body was read: stop reading (the sender's window closes), end
 * our side once the answer is out, and cut the connection after a short linger. Reading the rest
 * would let anyone without a key make the node take in a body of any size.
 */
export function hangUp(req: IncomingMessage, res: ServerResponse): void {
  req.pause();
  const cut = (): void => {
    req.socket.end();
    setTimeout(() => req.socket.destroy(), REFUSED_LINGER_MS).unref();
  };
  if (res.writableFinished) cut();
  else res.once('finish', cut);
}

