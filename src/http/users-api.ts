/**
 * The server API on users and channels (docs/auth.md, "Server API on users" and "Revocation"),
 * under the HTTP API's `--api-key`:
 *
 * - `POST /api/users/{user}/disconnect` `{"reconnect":false}` → closes the user's connections
 *   (4004, or 4005 with `"reconnect":true`)
 * - `POST /api/users/{user}/unsubscribe` `{"channel":C}` → `unsubscribed` with `"reason":"server"`
 * - `POST /api/users/{user}/subscribe` `{"channel":C}` → `subscribed` with `"server":true`
 * - `GET /api/users/{user}/connections` → `{"connections":[{client,node,since,channels}],…}`
 * - `POST /api/users/{user}/revoke` `{"issued_before":T,"until"?:T}`, `POST /api/tokens/revoke`
 *   `{"jti":ID,"until"?:T}` → stored cluster-wide, then the holders are closed with 4001
 * - `GET /api/channels[?prefix=P][&cursor=X][&limit=N]` → active channels with subscribers, paged
 * - `GET /api/channels/C` → `{channel,subscribers,presence,offset,epoch}`
 *
 * Every call acts through the cluster calls (node/cluster-calls.ts): each node acts on its own
 * sockets and answers; the answer sums them and says how many nodes answered (`nodes`) of how many
 * the node knew (`expected`); it comes once all answered, or after 2 s with those that did.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ChannelService } from '../channels/index.js';
import { BusUnavailableError } from '../errors.js';
import type { CallResult } from '../node/cluster-calls.js';
import { withoutCredentials } from '../config/bus-address.js';
import type { ChannelOptions } from '../config/namespaces.js';
import { toFlag } from '../config/sources.js';
import { isChannelName } from '../protocol/decode.js';
import type { Json } from '../protocol/frames.js';
import type { RevocationEntry } from '../stores/store.js';
import { readBody, sendJson, type Router } from '../transport/router.js';
import { fail, internal, type Authorized } from './api-kit.js';
import { UserOp } from './user-calls.js';

/** Longest user id (a token's `sub`) the API takes. */
export const MAX_USER_LENGTH = 256;
/** Longest token id (`jti`) the API takes. */
export const MAX_JTI_LENGTH = 256;
/** Largest body of these calls: they carry a few small fields. */
export const MAX_BODY_BYTES = 4096;
/** Channels per page by default, and at most. */
export const CHANNELS_PAGE = { default: 100, max: 1000 } as const;
/** How long a revocation lasts when `until` is not given, and at most (seconds). */
export const REVOCATION_SECONDS = { default: 86_400, max: 366 * 86_400 } as const;

/** What the server API uses: the cluster calls, the revocation store and the channel service. */
export interface UsersApiContext {
  readonly calls: { call(op: string, args: Json): Promise<CallResult> };
  readonly revocations: { add(entry: RevocationEntry): Promise<void> };
  readonly service: Pick<ChannelService, 'history' | 'presenceList' | 'presenceChannels' | 'channelOptions'>;
}

const USER_ROUTE = /^\/api\/users\/([^/]+)\/(disconnect|unsubscribe|subscribe|connections|revoke)$/;
const CHANNEL_INFO_ROUTE = /^\/api\/channels\/([^/]+)$/;

/** The `Allow` of a path of this API, for the catch-all's 405; undefined when it is not one. */
export function usersApiAllow(path: string): string | undefined {
  const user = USER_ROUTE.exec(path);
  if (user) return user[2] === 'connections' ? 'GET, HEAD' : 'POST';
  if (path === '/api/tokens/revoke') return 'POST';
  if (path === '/api/channels' || CHANNEL_INFO_ROUTE.test(path)) return 'GET, HEAD';
  return undefined;
}

export function addUsersApiRoutes(router: Router, context: UsersApiContext, api: { readonly authorized: Authorized }): void {
  const { calls } = context;
  const { authorized } = api;

  /** Runs `op` on every node and answers the summed `touched` (a failing bus answers 503). */
  const act = async (res: ServerResponse, op: string, args: Json): Promise<void> => {
    const result = await calls.call(op, args);
    let touched = 0;
    for (const answer of result.results.values()) touched += numberField(answer, 'touched');
    sendJson(res, 200, { touched, ...nodesOf(result) });
  };

  router.add('POST', USER_ROUTE, async (req, res, params) => {
    if (!authorized(req, res)) return;
    const [user, what] = params as [string, string];
    if (!validUser(user)) return fail(res, 'bad_request', `invalid user: 1 to ${MAX_USER_LENGTH} characters`);
    const body = await jsonBody(req, res);
    if (!body) return;
    await answering(res, async () => {
      if (what === 'disconnect') {
        const reconnect = body.reconnect ?? false;
        if (typeof reconnect !== 'boolean') return fail(res, 'bad_request', '"reconnect" must be true or false');
        return act(res, UserOp.DISCONNECT, { user, reconnect });
      }
      if (what === 'subscribe' || what === 'unsubscribe') {
        if (typeof body.channel !== 'string' || !isChannelName(body.channel)) return fail(res, 'bad_request', 'body must be {"channel":C} with a valid channel name');
        return act(res, what === 'subscribe' ? UserOp.SUBSCRIBE : UserOp.UNSUBSCRIBE, { user, channel: body.channel });
      }
      if (what === 'revoke') {
        const now = Date.now() / 1000;
        const issuedBefore = body.issued_before ?? Math.ceil(now);
        if (typeof issuedBefore !== 'number' || !Number.isFinite(issuedBefore)) return fail(res, 'bad_request', '"issued_before" must be unix seconds');
        const until = untilOf(res, body.until, now);
        if (until === undefined) return;
        return revoke(res, { kind: 'user', id: user, issuedBefore, until });
      }
      fail(res, 'method_not_allowed', `POST is not allowed here; use GET`, { allow: 'GET, HEAD' });
    });
  });

  router.add('GET', USER_ROUTE, async (req, res, params) => {
    if (!authorized(req, res)) return;
    const [user, what] = params as [string, string];
    if (what !== 'connections') return fail(res, 'method_not_allowed', `${req.method} is not allowed here; use POST`, { allow: 'POST' });
    if (!validUser(user)) return fail(res, 'bad_request', `invalid user: 1 to ${MAX_USER_LENGTH} characters`);
    await answering(res, async () => {
      const result = await calls.call(UserOp.CONNECTIONS, { user });
      const connections: Json[] = [];
      let more = false;
      for (const answer of result.results.values()) {
        const list = field(answer, 'connections');
        if (Array.isArray(list)) connections.push(...list);
        more ||= field(answer, 'more') === true;
      }
      sendJson(res, 200, { user, connections, ...(more ? { more } : {}), ...nodesOf(result) });
    });
  });

  router.add('POST', '/api/tokens/revoke', async (req, res) => {
    if (!authorized(req, res)) return;
    const body = await jsonBody(req, res);
    if (!body) return;
    const jti = body.jti;
    if (typeof jti !== 'string' || jti.length === 0 || jti.length > MAX_JTI_LENGTH) return fail(res, 'bad_request', `body must be {"jti":ID,"until":T} with an id of 1 to ${MAX_JTI_LENGTH} characters`);
    const until = untilOf(res, body.until, Date.now() / 1000);
    if (until === undefined) return;
    await answering(res, () => revoke(res, { kind: 'token', id: jti, until }));
  });

  /** Stored first (a node that starts later reads it), then every node hears it and closes its holders. */
  const revoke = async (res: ServerResponse, entry: RevocationEntry): Promise<void> => {
    await context.revocations.add(entry);
    await act(res, UserOp.REVOKE, { entry: entry as unknown as Json });
  };

  router.add('GET', '/api/channels', async (req, res) => {
    if (!authorized(req, res)) return;
    const query = new URL(req.url ?? '/', 'http://x').searchParams;
    const prefix = query.get('prefix') ?? '';
    if (prefix.length > 1024) return fail(res, 'bad_request', 'prefix: at most 1024 characters');
    const after = cursorValue(query.get('cursor'));
    if (after === undefined) return fail(res, 'bad_request', 'cursor: give back the "cursor" of the previous page');
    const limitText = query.get('limit');
    const limit = limitText === null ? CHANNELS_PAGE.default : Number(limitText);
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > CHANNELS_PAGE.max) return fail(res, 'bad_request', `limit: a whole number from 1 to ${CHANNELS_PAGE.max}`);
    await answering(res, async () => {
      const result = await calls.call(UserOp.CHANNELS, { prefix, after, limit });
      // Each node gave its first `limit` names after the cursor: the first `limit` of their union are the cluster's.
      const counts = new Map<string, number>();
      let more = false;
      for (const answer of result.results.values()) {
        const list = field(answer, 'channels');
        for (const item of Array.isArray(list) ? list : []) {
          if (Array.isArray(item) && typeof item[0] === 'string' && typeof item[1] === 'number') counts.set(item[0], (counts.get(item[0]) ?? 0) + item[1]);
        }
        more ||= field(answer, 'more') === true;
      }
      const names = [...counts.keys()].sort();
      const page = names.slice(0, limit);
      more ||= names.length > limit;
      const cursor = more && page.length > 0 ? Buffer.from(page[page.length - 1]!).toString('base64url') : null;
      sendJson(res, 200, { channels: page.map((channel) => ({ channel, subscribers: counts.get(channel)! })), cursor, ...nodesOf(result) });
    });
  });

  router.add('GET', CHANNEL_INFO_ROUTE, async (req, res, params) => {
    if (!authorized(req, res)) return;
    const [channel] = params as [string];
    if (!isChannelName(channel)) return fail(res, 'bad_request', 'invalid channel name');
    await answering(res, async () => sendJson(res, 200, await channelInfo(context, channel)));
  });
}

/**
 * `GET /api/channels/C`'s answer: the cluster's subscribers, the presence count (null without
 * --presence on it), the channel's offset and epoch, the namespace that applies with the
 * channel's options (docs/config.md), and the nodes that answered. One object,
 * built field by field, so more fields can join it.
 */
async function channelInfo(context: UsersApiContext, channel: string): Promise<Record<string, Json>> {
  const { service, calls } = context;
  const [result, position, present] = await Promise.all([
    calls.call(UserOp.CHANNEL, { channel }),
    service.history(channel, { limit: 1, maxBytes: 1 }),
    service.presenceChannels.matches(channel) ? service.presenceList(channel).then((list) => list.length) : Promise.resolve(null),
  ]);
  let subscribers = 0;
  for (const answer of result.results.values()) subscribers += numberField(answer, 'subscribers');
  const { namespace, ...options } = service.channelOptions(channel);
  const info: Record<string, Json> = { channel, subscribers, presence: present, offset: position.offset, epoch: position.epoch, namespace, options: optionsBody(options) };
  Object.assign(info, nodesOf(result));
  return info;
}

/** A channel's options under the config file's names (`history-size`), hook URLs without their credentials. */
function optionsBody(options: Omit<ChannelOptions, 'namespace'>): Record<string, Json> {
  return Object.fromEntries(Object.entries(options).map(([key, value]) => [toFlag(key), typeof value === 'string' ? withoutCredentials(value) : (value as Json)]));
}

/** Runs a handler: a bus or store that cannot answer is 503, anything else 500. */
async function answering(res: ServerResponse, run: () => Promise<void>): Promise<void> {
  try {
    await run();
  } catch (err) {
    if (!(err instanceof BusUnavailableError)) return internal(res, err);
    fail(res, 'unavailable', `not done: ${err.clientMessage}; retry`);
  }
}

/** The request's JSON object body (an empty body is `{}`), or undefined once a refusal was answered. */
async function jsonBody(req: IncomingMessage, res: ServerResponse): Promise<Record<string, unknown> | undefined> {
  const body = await readBody(req, MAX_BODY_BYTES);
  if (body === 'too_large') {
    fail(res, 'too_large', `body over ${MAX_BODY_BYTES} bytes`, { connection: 'close' });
    return undefined;
  }
  if (body.length === 0) return {};
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch {
    fail(res, 'bad_request', 'body is not JSON');
    return undefined;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    fail(res, 'bad_request', 'body must be a JSON object');
    return undefined;
  }
  return value as Record<string, unknown>;
}

/** `until` in unix seconds: given (ahead of now, within a year) or now + one day; undefined once refused. */
function untilOf(res: ServerResponse, value: unknown, now: number): number | undefined {
  if (value === undefined) return Math.ceil(now + REVOCATION_SECONDS.default);
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= now || value > now + REVOCATION_SECONDS.max) {
    fail(res, 'bad_request', `"until" must be unix seconds ahead of now and at most ${REVOCATION_SECONDS.max / 86_400} days ahead`);
    return undefined;
  }
  return value;
}

function validUser(user: string): boolean {
  return user.length > 0 && user.length <= MAX_USER_LENGTH;
}

/** The channel name a cursor stands for ('' without one); undefined for a cursor that is not one of ours. */
function cursorValue(cursor: string | null): string | undefined {
  if (cursor === null || cursor === '') return '';
  if (!/^[A-Za-z0-9_-]{1,1400}$/.test(cursor)) return undefined;
  const name = Buffer.from(cursor, 'base64url').toString('utf8');
  return isChannelName(name) ? name : undefined;
}

function nodesOf(result: CallResult): { nodes: number; expected: number } {
  return { nodes: result.results.size, expected: Math.max(result.expected, result.results.size) };
}

function field(answer: Json, name: string): Json | undefined {
  return typeof answer === 'object' && answer !== null && !Array.isArray(answer) ? answer[name] : undefined;
}

function numberField(answer: Json, name: string): number {
  const value = field(answer, name);
  return typeof value === 'number' && Number.isFinite(value) ? value : 0;
}
