/**
 * The HTTP API for back ends (on only with --api-key), every call with `Authorization: Bearer KEY`:
 *
 * - `POST /api/publish` `{"channel":C,"data":ANY_JSON}` → 200 `{"offset":O}`
 * - `GET /api/channels/C/history[?limit=N][&before=B]` → 200 `{"channel","epoch","offset","messages":[…]}`
 * - `GET /api/channels/C/presence` → 200 `{"channel","clients":[…]}`
 * - `GET /api/channels/C` → 200 `{"channel","namespace","options":{…}}`: the namespace that
 *   applies (its pattern, or null for the top-level values) and the channel's options under the
 *   config file's names (docs/config.md)
 *
 * Failures are `{"error":CODE,"message":TEXT}` with the registry's codes and statuses
 * (protocol/codes.ts ERROR_CODES): 400, 401, 404 (API off, unknown path, a channel without
 * presence), 405 (wrong method, with `Allow`), 413, 500, 503. A channel name with `/` is sent
 * encoded (`%2F`) in the path.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ChannelService } from '../channels/index.js';
import { presenceWithinBudget, REPLY_BUDGET_BYTES } from '../channels/index.js';
import { BusUnavailableError, httpStatusOf, type ApiErrorCode } from '../errors.js';
import { isRefusal, parseJsonInput, publishInput } from '../channels/index.js';
import { isChannelName } from '../protocol/decode.js';
import { encodeHistoryBody } from '../protocol/encode.js';
import { sendJson, type Router } from '../transport/router.js';
import { withoutCredentials } from '../config/bus-address.js';
import type { ChannelOptions } from '../config/namespaces.js';
import { toFlag } from '../config/sources.js';

/** What the API uses: the channel service, --api-key and --max-payload. */
export interface ApiContext {
  readonly service: Pick<ChannelService, 'publish' | 'history' | 'presenceList' | 'presenceChannels' | 'channelOptions'>;
  readonly apiKey: string | undefined;
  readonly maxPayload: number;
}

const CHANNEL_ROUTE = /^\/api\/channels\/([^/]+)\/(history|presence)$/;
const OPTIONS_ROUTE = /^\/api\/channels\/([^/]+)$/;

export function addApiRoutes(router: Router, context: ApiContext): void {
  const { service, maxPayload } = context;
  const key = context.apiKey;
  const keyHash = key === undefined ? undefined : sha256(key);

  /** True when the request may go on; otherwise the answer has been sent. */
  const authorized = (req: IncomingMessage, res: ServerResponse): boolean => {
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

  router.add('POST', '/api/publish', async (req, res) => {
    // Neither the cap nor the key waits for the body: a refused upload is not read.
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > maxPayload) return refuse(req, res, 'too_large', `body over --max-payload (${maxPayload} bytes)`);
    if (!authorized(req, res)) return hangUp(req, res);
    const body = await readBody(req, maxPayload);
    if (body === 'too_large') return refuse(req, res, 'too_large', `body over --max-payload (${maxPayload} bytes)`);
    const parsed = parseJsonInput(body, maxPayload);
    if (isRefusal(parsed)) return fail(res, parsed.error, `body is ${parsed.message}`);
    const { value } = parsed;
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return fail(res, 'bad_request', 'body must be {"channel":C,"data":…}');
    const input = publishInput((value as Record<string, unknown>).channel, (value as Record<string, unknown>).data);
    if (isRefusal(input)) return fail(res, input.error, input.message);
    try {
      const { offset } = await service.publish(input.channel, input.data);
      sendJson(res, 200, { offset });
    } catch (err) {
      if (!(err instanceof BusUnavailableError)) return internal(res, err);
      fail(res, 'unavailable', `not published: ${err.clientMessage}`);
    }
  });

  router.add('GET', CHANNEL_ROUTE, async (req, res, params) => {
    if (!authorized(req, res)) return;
    const [channel, what] = params as [string, 'history' | 'presence'];
    if (!isChannelName(channel)) return fail(res, 'bad_request', 'invalid channel name');
    try {
      if (what === 'presence') {
        if (!service.presenceChannels.matches(channel)) return fail(res, 'not_found', `${channel} has no presence (see --presence)`);
        const all = await service.presenceList(channel);
        const clients = presenceWithinBudget(all, REPLY_BUDGET_BYTES);
        return sendJson(res, 200, { channel, clients, ...(clients.length < all.length ? { more: true } : {}) });
      }
      const query = new URL(req.url ?? '/', 'http://x').searchParams;
      const limit = wholeNumber(query.get('limit'));
      const before = wholeNumber(query.get('before'));
      if (limit === null) return fail(res, 'bad_request', 'limit must be an integer >= 0');
      if (before === null) return fail(res, 'bad_request', 'before must be an integer >= 0');
      const result = await service.history(channel, { limit, before, maxBytes: REPLY_BUDGET_BYTES });
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      res.end(encodeHistoryBody({ channel, epoch: result.epoch, offset: result.offset, more: result.more || undefined }, result.messages));
    } catch (err) {
      if (!(err instanceof BusUnavailableError)) return internal(res, err);
      fail(res, 'unavailable', err.clientMessage);
    }
  });

  router.add('GET', OPTIONS_ROUTE, (req, res, params) => {
    if (!authorized(req, res)) return;
    const [channel] = params as [string];
    if (!isChannelName(channel)) return fail(res, 'bad_request', 'invalid channel name');
    const { namespace, ...options } = service.channelOptions(channel);
    sendJson(res, 200, { channel, namespace, options: optionsBody(options) });
  });

  // Anything else under /api/ gets a JSON answer too: 405 with Allow on a known path, else 404.
  router.add('*', /^\/api(\/.*)?$/, (req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const allow = path === '/api/publish' ? 'POST' : CHANNEL_ROUTE.test(path) || OPTIONS_ROUTE.test(path) ? 'GET, HEAD' : undefined;
    if (allow) return fail(res, 'method_not_allowed', `${req.method} is not allowed here; use ${allow}`, { allow });
    fail(res, 'not_found', 'no such API call (a channel name with / goes encoded, as %2F)');
  });
}

/** A channel's options under the config file's names (`history-size`), hook URLs without their credentials. */
function optionsBody(options: Omit<ChannelOptions, 'namespace'>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(options).map(([key, value]) => [toFlag(key), typeof value === 'string' ? withoutCredentials(value) : value]));
}

/** An error answer: the status is the registry's for `error` (protocol/codes.ts). */
function fail(res: ServerResponse, error: ApiErrorCode, message: string, headers: Record<string, string> = {}): void {
  sendJson(res, httpStatusOf(error), { error, message }, headers);
}

/** An unexpected failure: the caller hears `internal`, never the error's own text; the router logs it. */
function internal(res: ServerResponse, err: unknown): never {
  fail(res, 'internal', 'the server failed to answer this request');
  throw err;
}

/** A query parameter as a whole number: undefined when absent, null when not a whole number >= 0. */
function wholeNumber(text: string | null): number | undefined | null {
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
function refuse(req: IncomingMessage, res: ServerResponse, error: ApiErrorCode, message: string): void {
  fail(res, error, message, { connection: 'close' });
  hangUp(req, res);
}

/**
 * After an answer sent before the body was read: stop reading (the sender's window closes), end
 * our side once the answer is out, and cut the connection after a short linger. Reading the rest
 * would let anyone without a key make the node take in a body of any size.
 */
function hangUp(req: IncomingMessage, res: ServerResponse): void {
  req.pause();
  const cut = (): void => {
    req.socket.end();
    setTimeout(() => req.socket.destroy(), REFUSED_LINGER_MS).unref();
  };
  if (res.writableFinished) cut();
  else res.once('finish', cut);
}

/** The request body, or 'too_large' as soon as it passes `max` bytes (the rest is not read). */
function readBody(req: IncomingMessage, max: number): Promise<Buffer | 'too_large'> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > max) {
        req.removeAllListeners('data');
        resolve('too_large');
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}
