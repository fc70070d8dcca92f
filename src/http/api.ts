/**
 * The HTTP API for back ends (on only with --api-key), every call with `Authorization: Bearer KEY`:
 *
 * - `POST /api/publish` `{"channel":C,"data":ANY_JSON[,"idempotency_key":K]}` (or the key in an
 *   `Idempotency-Key` header) → 200 `{"offset":O}`, or `{"offset":O,"duplicate":true}` for a key
 *   the channel had within its idempotency-window (nothing stored; O is the first publish's)
 * - `GET /api/channels/C/history[?limit=N][&before=B]` → 200 `{"channel","epoch","offset","messages":[…]}`
 * - `GET /api/channels/C/presence` → 200 `{"channel","clients":[…]}`
 * - `GET /api/channels/C/latest` → 200 `{"offset","epoch","data"}`: the channel's latest message
 *   (a last-value channel keeps it, another while its history holds it), 404 `not_found` when none
 * - `GET /api/channels/C` → 200 `{"channel","namespace","options":{…}}`: the namespace that
 *   applies (its pattern, or null for the top-level values) and the channel's options under the
 *   config file's names (docs/config.md)
 *
 * Failures are `{"error":CODE,"message":TEXT}` with the registry's codes and statuses
 * (protocol/codes.ts ERROR_CODES): 400, 401, 404 (API off, unknown path, a channel without
 * presence), 405 (wrong method, with `Allow`), 413, 500, 503. A channel name with `/` is sent
 * encoded (`%2F`) in the path.
 */
import type { ChannelService } from '../channels/index.js';
import { presenceWithinBudget, REPLY_BUDGET_BYTES } from '../channels/index.js';
import { BusUnavailableError } from '../errors.js';
import { isRefusal, parseJsonInput, publishInput } from '../channels/index.js';
import { IDEMPOTENCY_KEY_RULE, isChannelName, isIdempotencyKey } from '../protocol/decode.js';
import { encodeHistoryBody } from '../protocol/encode.js';
import { readBody, sendJson, type Router } from '../transport/router.js';
import { apiKeyCheck, fail, hangUp, internal, refuse, wholeNumber } from './api-kit.js';
import { addUsersApiRoutes, usersApiAllow, type UsersApiContext } from './users-api.js';

/** What the API uses: the channel service, --api-key and --max-payload. */
export interface ApiContext {
  readonly service: Pick<ChannelService, 'publish' | 'history' | 'latest' | 'presenceList' | 'presenceChannels' | 'channelOptions'>;
  readonly apiKey: string | undefined;
  readonly maxPayload: number;
  /** The server API on users and channels (users-api.ts), when the node has one. */
  readonly users?: UsersApiContext | undefined;
}

const CHANNEL_ROUTE = /^\/api\/channels\/([^/]+)\/(history|presence|latest)$/;

export function addApiRoutes(router: Router, context: ApiContext): void {
  const { service, maxPayload } = context;
  const key = context.apiKey;

  const authorized = apiKeyCheck(key);

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
    const key = idempotencyKeyOf(req.headers['idempotency-key'], (value as Record<string, unknown>).idempotency_key);
    if (key !== undefined && typeof key !== 'string') return fail(res, 'bad_request', key.refused);
    try {
      const { offset, duplicate } = await service.publish(input.channel, input.data, undefined, key);
      sendJson(res, 200, duplicate ? { offset, duplicate } : { offset });
    } catch (err) {
      if (!(err instanceof BusUnavailableError)) return internal(res, err);
      fail(res, 'unavailable', `not published: ${err.clientMessage}`);
    }
  });

  router.add('GET', CHANNEL_ROUTE, async (req, res, params) => {
    if (!authorized(req, res)) return;
    const [channel, what] = params as [string, 'history' | 'presence' | 'latest'];
    if (!isChannelName(channel)) return fail(res, 'bad_request', 'invalid channel name');
    try {
      if (what === 'presence') {
        if (!service.presenceChannels.matches(channel)) return fail(res, 'not_found', `${channel} has no presence (see --presence)`);
        const all = await service.presenceList(channel);
        const clients = presenceWithinBudget(all, REPLY_BUDGET_BYTES);
        return sendJson(res, 200, { channel, clients, ...(clients.length < all.length ? { more: true } : {}) });
      }
      if (what === 'latest') {
        const latest = await service.latest(channel);
        if (!latest) return fail(res, 'not_found', `${channel} has no latest message`);
        // The data is the stored JSON text, spliced in unparsed.
        res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
        res.end(`{"offset":${latest.offset},"epoch":${JSON.stringify(latest.epoch)},"data":${latest.data}}`);
        return;
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

  if (context.users) addUsersApiRoutes(router, context.users, { authorized });

  // Anything else under /api/ gets a JSON answer too: 405 with Allow on a known path, else 404.
  router.add('*', /^\/api(\/.*)?$/, (req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const allow = path === '/api/publish' ? 'POST' : CHANNEL_ROUTE.test(path) ? 'GET, HEAD' : context.users ? usersApiAllow(path) : undefined;
    if (allow) return fail(res, 'method_not_allowed', `${req.method} is not allowed here; use ${allow}`, { allow });
    fail(res, 'not_found', 'no such API call (a channel name with / goes encoded, as %2F)');
  });
}


/**
 * The publish's idempotency key: the `Idempotency-Key` header or the body's `idempotency_key`
 * (both may be given only with the same value); undefined without one.
 */
function idempotencyKeyOf(header: string | string[] | undefined, field: unknown): string | { readonly refused: string } | undefined {
  if (Array.isArray(header)) return { refused: 'one Idempotency-Key header at most' };
  if (header !== undefined && !isIdempotencyKey(header)) return { refused: `the Idempotency-Key header: ${IDEMPOTENCY_KEY_RULE.replace('"idempotency_key" ', '')}` };
  if (field !== undefined && !isIdempotencyKey(field)) return { refused: IDEMPOTENCY_KEY_RULE };
  if (header !== undefined && field !== undefined && header !== field) return { refused: 'the Idempotency-Key header and "idempotency_key" differ; give one' };
  return header ?? field;
}
