/**
 * The edge of the channel protocol: every frame a client sends is validated here, once, before
 * anything else looks at it. Hand-checked rather than schema-driven: it runs for every frame and
 * its rules are few.
 */
import type { ClientFrame, ErrorCode, Json, StreamPosition } from './frames.js';

/** Channel names: 1–200 of letters, digits and `_ - . : @ / = +`. No `*` (patterns), quotes, spaces or braces. */
export const CHANNEL_NAME = /^[A-Za-z0-9_.:@/=+-]{1,200}$/;

/**
 * Deepest nesting of arrays and objects in a publish's `data`. JSON.parse takes any depth, but
 * turning a 10 000-deep value back into text overflows the stack; nothing real nests this deep.
 */
export const MAX_DATA_DEPTH = 100;

/** Longest token a `subscribe` or `refresh` frame may carry (as at the upgrade), so a huge one costs nothing to refuse. */
export const MAX_FRAME_TOKEN_LENGTH = 8192;

/**
 * An `idempotency_key` (a publish's, a frame field or `POST /api/publish`'s field or header):
 * 1–128 printable ASCII characters, no space, so it is the same text in a JSON frame, an HTTP
 * header, a Redis key, a NATS header and a Kafka header.
 */
export const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,128}$/;

/** The rule {@link IDEMPOTENCY_KEY} checks, as the error message says it. */
export const IDEMPOTENCY_KEY_RULE = '"idempotency_key" must be 1–128 printable ASCII characters, no spaces';

/** True for a valid idempotency key. */
export function isIdempotencyKey(value: unknown): value is string {
  return typeof value === 'string' && IDEMPOTENCY_KEY.test(value);
}

/** Largest `id` a client may send (ids are echoed, so they must survive JSON round trips). */
const MAX_ID = Number.MAX_SAFE_INTEGER;

export type DecodeResult =
  | { readonly ok: true; readonly frame: ClientFrame }
  | { readonly ok: false; readonly code: ErrorCode; readonly message: string; readonly id?: number; readonly channel?: string };

/** True for a valid channel name. */
export function isChannelName(value: unknown): value is string {
  return typeof value === 'string' && CHANNEL_NAME.test(value);
}

/** Validates one untrusted text frame. Never throws. */
export function decode(text: string | Buffer): DecodeResult {
  let value: unknown;
  try {
    value = JSON.parse(typeof text === 'string' ? text : text.toString('utf8'));
  } catch {
    return fail('frame is not JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return fail('frame must be a JSON object');
  const raw = value as Record<string, unknown>;

  let id: number | undefined;
  if (raw.id !== undefined) {
    if (typeof raw.id !== 'number' || !Number.isInteger(raw.id) || Math.abs(raw.id) > MAX_ID) {
      return fail('"id" must be an integer');
    }
    id = raw.id;
  }
  const type = raw.type;
  if (typeof type !== 'string') return fail('"type" is missing', id);
  if (!KNOWN_TYPES.has(type)) return fail(`unknown type ${JSON.stringify(type.slice(0, 40))}`, id);

  const channel = raw.channel;
  // The connection's refresh is the one frame without a channel.
  if (type === 'refresh' && channel === undefined) {
    const token = tokenField(raw.token);
    if (token === undefined) return fail(TOKEN_RULE, id);
    return ok({ type, token, ...(id === undefined ? {} : { id }) });
  }
  if (channel === undefined) return fail('"channel" is missing', id);
  if (!isChannelName(channel)) {
    return fail('"channel" must be 1–200 letters, digits or _ - . : @ / = +', id);
  }
  const withId = id === undefined ? {} : { id };

  switch (type) {
    case 'subscribe': {
      let withToken = {};
      if (raw.token !== undefined) {
        const token = tokenField(raw.token);
        if (token === undefined) return fail(TOKEN_RULE, id, channel);
        withToken = { token };
      }
      const delta = raw.delta;
      if (delta !== undefined && typeof delta !== 'boolean') return fail('"delta" must be true or false', id, channel);
      const withDelta = delta === true ? { delta } : {};
      if (raw.since === undefined) return ok({ type, channel, ...withId, ...withToken, ...withDelta });
      const since = position(raw.since);
      if (!since) return fail('"since" must be {"offset": integer >= 0, "epoch": string}', id, channel);
      return ok({ type, channel, ...withId, since, ...withToken, ...withDelta });
    }
    case 'refresh': {
      const token = tokenField(raw.token);
      if (token === undefined) return fail(TOKEN_RULE, id, channel);
      return ok({ type, channel, token, ...withId });
    }
    case 'unsubscribe':
      return ok({ type, channel, ...withId });
    case 'publish':
      if (!('data' in raw) || raw.data === undefined) return fail('"data" is missing', id, channel);
      if (nestsDeeperThan(raw.data, MAX_DATA_DEPTH)) return fail(`"data" nests deeper than ${MAX_DATA_DEPTH} levels`, id, channel);
      if (raw.idempotency_key === undefined) return ok({ type, channel, ...withId, data: raw.data as Json });
      if (!isIdempotencyKey(raw.idempotency_key)) return fail(IDEMPOTENCY_KEY_RULE, id, channel);
      return ok({ type, channel, ...withId, data: raw.data as Json, idempotency_key: raw.idempotency_key });
    case 'history': {
      const limit = raw.limit;
      if (limit !== undefined && !isWholeNumber(limit)) return fail('"limit" must be an integer >= 0', id, channel);
      const before = raw.before;
      if (before !== undefined && !isWholeNumber(before)) return fail('"before" must be an integer >= 0 (an offset)', id, channel);
      return ok({ type, channel, ...withId, ...(limit === undefined ? {} : { limit }), ...(before === undefined ? {} : { before }) });
    }
    default:
      return ok({ type: 'presence', channel, ...withId });
  }
}

/** True when arrays and objects in `value` nest deeper than `max` levels (an explicit stack: no recursion on hostile input). */
export function nestsDeeperThan(value: unknown, max: number): boolean {
  const stack: Array<[unknown, number]> = [[value, 0]];
  while (stack.length > 0) {
    const [item, depth] = stack.pop()!;
    if (typeof item !== 'object' || item === null) continue;
    if (depth + 1 > max) return true;
    for (const child of Array.isArray(item) ? item : Object.values(item)) {
      if (typeof child === 'object' && child !== null) stack.push([child, depth + 1]);
    }
  }
  return false;
}

const KNOWN_TYPES = new Set(['subscribe', 'unsubscribe', 'publish', 'history', 'presence', 'refresh']);

const TOKEN_RULE = `"token" must be a non-empty string of at most ${MAX_FRAME_TOKEN_LENGTH} characters`;

/** A token field: a non-empty string within {@link MAX_FRAME_TOKEN_LENGTH}; undefined otherwise (missing included). */
function tokenField(value: unknown): string | undefined {
  return typeof value === 'string' && value.length > 0 && value.length <= MAX_FRAME_TOKEN_LENGTH ? value : undefined;
}

function isWholeNumber(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function position(value: unknown): StreamPosition | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const { offset, epoch } = value as Record<string, unknown>;
  if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0) return undefined;
  if (typeof epoch !== 'string' || epoch.length > 64) return undefined;
  return { offset, epoch };
}

function ok(frame: ClientFrame): DecodeResult {
  return { ok: true, frame };
}

function fail(message: string, id?: number, channel?: string): DecodeResult {
  return {
    ok: false,
    code: 'bad_request',
    message,
    ...(id === undefined ? {} : { id }),
    ...(channel === undefined ? {} : { channel }),
  };
}
