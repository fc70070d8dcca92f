/**
 * The envelope every bus message travels in: who sent it, what it is and when, in front of the body.
 * Binary, so no node parses JSON to route a message:
 *
 *   [2][kind][origin length][origin][publish time: float64 BE, ms since the epoch][body]
 *
 * The leading 2 is the envelope's version; anything else is dropped. The publish time feeds
 * `fanout_publish_latency_seconds` on the receiving nodes.
 */

export const ENVELOPE_VERSION = 2;

/** What a bus message carries. The body's format belongs to the kind. */
export const EnvelopeKind = {
  /** /ws/echo broadcast: the body is the UTF-8 text to send, `Received: <message>`. */
  ECHO: 1,
  /** A channel message: the body is the encoded `message` frame. */
  CHANNEL: 2,
  /** A channel's presence change: the body is the encoded `join`/`leave` frame. */
  PRESENCE: 3,
  /** Node-to-node control traffic of the channels (fences; JSON body). */
  CONTROL: 4,
  /** The cluster calls (node/cluster-calls.ts): the node registry's hellos and the server API's calls and answers (JSON body). */
  CLUSTER: 5,
  /** The SSE transport's POSTs forwarded to the node holding the session, and its answers (node/sse-relay.ts; JSON body). */
  SSE: 6,
} as const;

export type EnvelopeKind = (typeof EnvelopeKind)[keyof typeof EnvelopeKind];

export interface Envelope {
  readonly kind: number;
  readonly origin: string;
  readonly body: Buffer;
  /** When the origin node published it (ms since the epoch, sub-millisecond precision). */
  readonly publishedAt: number;
}

/** Wall-clock now in milliseconds with sub-millisecond precision (the global `performance`, in Node and browsers alike). */
export function preciseNow(): number {
  return performance.timeOrigin + performance.now();
}

/** Wraps `body`; `origin` is a node id (ASCII, at most 255 bytes); `publishedAt` defaults to now. */
export function encodeEnvelope(kind: EnvelopeKind, origin: string, body: Buffer, publishedAt = preciseNow()): Buffer {
  const originLength = Buffer.byteLength(origin);
  if (originLength > 255) throw new RangeError('origin id longer than 255 bytes');
  const bodyAt = 3 + originLength + 8;
  const out = Buffer.allocUnsafe(bodyAt + body.length);
  out[0] = ENVELOPE_VERSION;
  out[1] = kind;
  out[2] = originLength;
  out.write(origin, 3, 'latin1');
  out.writeDoubleBE(publishedAt, 3 + originLength);
  body.copy(out, bodyAt);
  return out;
}

/** Unwraps a bus message; `undefined` for anything that is not a valid envelope. */
export function decodeEnvelope(payload: Buffer): Envelope | undefined {
  if (payload.length < 3 || payload[0] !== ENVELOPE_VERSION) return undefined;
  const originLength = payload[2]!;
  const bodyAt = 3 + originLength + 8;
  if (payload.length < bodyAt) return undefined;
  return {
    kind: payload[1]!,
    origin: payload.toString('latin1', 3, 3 + originLength),
    body: payload.subarray(bodyAt),
    publishedAt: payload.readDoubleBE(3 + originLength),
  };
}

/** True when `payload` is an envelope sent by `nodeId`: the cheap check done before decoding. */
export function isFromOrigin(payload: Buffer, nodeId: Buffer): boolean {
  return (
    payload.length >= 3 + nodeId.length &&
    payload[2] === nodeId.length &&
    payload.subarray(3, 3 + nodeId.length).equals(nodeId)
  );
}
