/**
 * The Pusher HTTP API for one app (docs/pusher.md), signed as Pusher signs it (sign.ts): trigger
 * and batch triggers through the channel service, and channel queries and terminate_connections
 * over the cluster calls, so counts are cluster-wide. Answers follow Pusher's: 200 with JSON,
 * 400/401/404/413 with a plain-text sentence.
 *
 * Bounded: a body is read up to {@link bodyLimit}; a trigger names at most 100 channels, a batch
 * at most {@link MAX_BATCH} events; each node lists at most {@link MAX_LISTED} channels.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ChannelService } from '../channels/index.js';
import { BusUnavailableError } from '../errors.js';
import type { Json } from '../protocol/frames.js';
import { isPusherChannel, isSubscribable } from '../protocol/pusher.js';
import { readBody, sendJson, sendText, type Router } from '../transport/router.js';
import { internalChannel, type PusherEvent } from './channels.js';
import { checkApiSignature, type PusherApp } from './sign.js';

/** Pusher's limits: channels per trigger, events per batch. */
export const MAX_TRIGGER_CHANNELS = 100;
export const MAX_BATCH = 10;
/** Channels one node lists at most for `GET /apps/{id}/channels`. */
export const MAX_LISTED = 1000;

/** The cluster-call names, shared by both ends. */
export const PusherOp = { CHANNELS: 'pusher.channels', CHANNEL: 'pusher.channel', TERMINATE: 'pusher.terminate' } as const;

/** What the API uses of the node. */
export interface PusherApiContext {
  readonly app: PusherApp;
  readonly service: ChannelService;
  readonly maxEventBytes: number;
  /** A cluster-wide call: each node's answer. */
  call(op: string, args: Json): Promise<ReadonlyMap<string, Json>>;
}

/** The most body bytes read: a full batch of events at the data limit, with room for names. */
function bodyLimit(maxEventBytes: number): number {
  return MAX_BATCH * (maxEventBytes * 2 + 1024) + 64 * 1024;
}

class Refusal extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export function addPusherApiRoutes(router: Router, context: PusherApiContext): void {
  const { app } = context;
  const base = `/apps/${app.id}`;
  const route = (method: string, path: RegExp, handler: (req: IncomingMessage, res: ServerResponse, params: readonly string[], body: Buffer) => Promise<void>): void => {
    router.add(method, path, async (req, res, params) => {
      const body = await readBody(req, bodyLimit(context.maxEventBytes));
      if (body === 'too_large') return sendText(res, 413, 'Request Entity Too Large', { connection: 'close' });
      const url = new URL(req.url ?? '/', 'http://x');
      const verdict = checkApiSignature(app, req.method ?? 'GET', url.pathname, url.searchParams, body);
      if (!verdict.ok) return sendText(res, 401, verdict.message);
      try {
        await handler(req, res, params, body);
      } catch (err) {
        if (err instanceof Refusal) return sendText(res, err.status, err.message);
        if (err instanceof BusUnavailableError) return sendText(res, 503, `Service unavailable: ${err.clientMessage}`);
        throw err;
      }
    });
  };
  const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const at = (tail: string): RegExp => new RegExp(`^${esc(base)}${tail}$`);

  route('POST', at('/events'), async (_req, res, _p, body) => {
    const event = parseJson(body) as { name?: unknown; data?: unknown; channel?: unknown; channels?: unknown; socket_id?: unknown };
    const channels = event.channels ?? (event.channel === undefined ? undefined : [event.channel]);
    if (!Array.isArray(channels) || channels.length === 0) throw new Refusal(400, 'Missing channels: give channel or channels');
    if (channels.length > MAX_TRIGGER_CHANNELS) throw new Refusal(400, `Too many channels: at most ${MAX_TRIGGER_CHANNELS} per trigger`);
    const checked = checkEvent(context, event);
    // sendToUser triggers on the user's #server-to-user- channel, which pusher-js joins after signin.
    for (const channel of channels) if (!isSubscribable(channel)) throw new Refusal(400, `Invalid channel name ${JSON.stringify(String(channel).slice(0, 210))}: 1–200 of A-Z a-z 0-9 _ - = @ , . ;`);
    await Promise.all((channels as string[]).map((channel) => context.service.publish(internalChannel(app.id, channel), checked)));
    sendJson(res, 200, {});
  });

  route('POST', at('/batch_events'), async (_req, res, _p, body) => {
    const { batch } = parseJson(body) as { batch?: unknown };
    if (!Array.isArray(batch) || batch.length === 0) throw new Refusal(400, 'Missing batch: an array of events');
    if (batch.length > MAX_BATCH) throw new Refusal(400, `Batch too large: at most ${MAX_BATCH} events`);
    const events = batch.map((e: unknown) => {
      const event = (typeof e === 'object' && e !== null ? e : {}) as { channel?: unknown; name?: unknown; data?: unknown; socket_id?: unknown };
      if (!isPusherChannel(event.channel)) throw new Refusal(400, 'Invalid channel name in batch');
      return [event.channel, checkEvent(context, event)] as const;
    });
    for (const [channel, data] of events) await context.service.publish(internalChannel(app.id, channel), data);
    sendJson(res, 200, {});
  });

  route('GET', at('/channels'), async (req, res) => {
    const query = new URL(req.url ?? '/', 'http://x').searchParams;
    const prefix = query.get('filter_by_prefix') ?? '';
    const info = (query.get('info') ?? '').split(',');
    if (info.includes('user_count') && !prefix.startsWith('presence-')) throw new Refusal(400, 'info=user_count needs filter_by_prefix=presence-');
    const counts = await clusterChannels(context, prefix);
    const channels: Record<string, Record<string, number>> = {};
    for (const [name, count] of counts) {
      channels[name] = {};
      if (info.includes('subscription_count')) channels[name].subscription_count = count;
      if (info.includes('user_count')) channels[name].user_count = await userCount(context, name);
    }
    sendJson(res, 200, { channels });
  });

  route('GET', at('/channels/([^/]+)'), async (req, res, params) => {
    const channel = params[0]!;
    if (!isPusherChannel(channel)) throw new Refusal(400, 'Invalid channel name');
    const info = (new URL(req.url ?? '/', 'http://x').searchParams.get('info') ?? '').split(',');
    if (info.includes('user_count') && !channel.startsWith('presence-')) throw new Refusal(400, 'info=user_count is for presence channels only');
    const results = await context.call(PusherOp.CHANNEL, { channel });
    let count = 0;
    for (const n of results.values()) count += typeof n === 'number' ? n : 0;
    const answer: Record<string, unknown> = { occupied: count > 0 };
    if (info.includes('subscription_count')) answer.subscription_count = count;
    if (info.includes('user_count')) answer.user_count = await userCount(context, channel);
    sendJson(res, 200, answer);
  });

  route('GET', at('/channels/([^/]+)/users'), async (_req, res, params) => {
    const channel = params[0]!;
    if (!isPusherChannel(channel) || !channel.startsWith('presence-')) throw new Refusal(400, 'users are listed for presence channels only');
    const ids = await users(context, channel);
    sendJson(res, 200, { users: ids.map((id) => ({ id })) });
  });

  route('POST', at('/users/([^/]+)/terminate_connections'), async (_req, res, params) => {
    const user = params[0]!;
    if (user === '' || user.length > 200) throw new Refusal(400, 'Invalid user id');
    await context.call(PusherOp.TERMINATE, { user });
    sendJson(res, 200, {});
  });
}

/** One event of a trigger or a batch, checked against Pusher's limits; its stored JSON. */
function checkEvent(context: PusherApiContext, event: { name?: unknown; data?: unknown; socket_id?: unknown }): string {
  const { name, data, socket_id: socketId } = event;
  if (typeof name !== 'string' || name === '' || name.length > 200) throw new Refusal(400, 'Invalid event name: 1–200 characters');
  if (typeof data !== 'string') throw new Refusal(400, 'Invalid data: a string (the pusher libraries send JSON text)');
  if (Buffer.byteLength(data) > context.maxEventBytes) throw new Refusal(413, `Payload too large: event data over ${context.maxEventBytes} bytes (--pusher-max-event-bytes)`);
  if (socketId !== undefined && (typeof socketId !== 'string' || !/^\d+\.\d+$/.test(socketId))) throw new Refusal(400, 'Invalid socket_id');
  return JSON.stringify({ e: name, d: data, x: socketId } satisfies PusherEvent);
}

function parseJson(body: Buffer): Record<string, unknown> {
  try {
    const value = JSON.parse(body.toString('utf8')) as unknown;
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) return value as Record<string, unknown>;
  } catch {
    /* below */
  }
  throw new Refusal(400, 'Invalid JSON body');
}

/** Occupied channels across the cluster with their subscriber counts, summed over the nodes. */
async function clusterChannels(context: PusherApiContext, prefix: string): Promise<Map<string, number>> {
  const results = await context.call(PusherOp.CHANNELS, { prefix });
  const counts = new Map<string, number>();
  for (const list of results.values()) {
    if (!Array.isArray(list)) continue;
    for (const pair of list) {
      if (!Array.isArray(pair) || typeof pair[0] !== 'string' || typeof pair[1] !== 'number') continue;
      counts.set(pair[0], (counts.get(pair[0]) ?? 0) + pair[1]);
    }
  }
  return counts;
}

async function users(context: PusherApiContext, channel: string): Promise<string[]> {
  const entries = await context.service.presenceList(internalChannel(context.app.id, channel));
  return [...new Set(entries.map((e) => e.user).filter((u): u is string => u !== null))];
}

async function userCount(context: PusherApiContext, channel: string): Promise<number> {
  return (await users(context, channel)).length;
}

