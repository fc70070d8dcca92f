/**
 * The envelope every bus message travels in: who sent it and what it is, in front of the body.
 * Binary, so no node parses JSON to route a message: [version][kind][origin length][origin][body].
 */

export const ENVELOPE_VERSION = 1;

/** What a bus message carries. The body's format belongs to the kind. */
export const EnvelopeKind = {
  /** /ws/echo broadcast: the body is the UTF-8 text to send, `Received: <message>`. */
  ECHO: 1,
  /** A channel message: the body is the encoded `message` frame. */
  CHANNEL: 2,
  /** A channel's presence change: the body is the encoded `join`/`leave` frame. */
  PRESENCE: 3,
  /** Node-to-node control traffic (JSON body). */
  CONTROL: 4,
} as const;

export type EnvelopeKind = (typeof EnvelopeKind)[keyof typeof EnvelopeKind];

export interface Envelope {
  readonly kind: number;
  readonly origin: string;
  readonly body: Buffer;
}

/** Wraps `body`; `origin` is a node id (ASCII, at most 255 bytes). */
export function encodeEnvelope(kind: EnvelopeKind, origin: string, body: Buffer): Buffer {
  const originLength = Buffer.byteLength(origin);
  if (originLength > 255) throw new RangeError('origin id longer than 255 bytes');
  const out = Buffer.allocUnsafe(3 + originLength + body.length);
  out[0] = ENVELOPE_VERSION;
  out[1] = kind;
  out[2] = originLength;
  out.write(origin, 3, 'latin1');
  body.copy(out, 3 + originLength);
  return out;
}

/** Unwraps a bus message; `undefined` for anything that is not a valid envelope of this version. */
export function decodeEnvelope(payload: Buffer): Envelope | undefined {
  if (payload.length < 3 || payload[0] !== ENVELOPE_VERSION) return undefined;
  const originLength = payload[2]!;
  if (payload.length < 3 + originLength) return undefined;
  return {
    kind: payload[1]!,
    origin: payload.toString('latin1', 3, 3 + originLength),
    body: payload.subarray(3 + originLength),
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
