/**
 * The one definition of the `message` frame's bytes (server side):
 *
 *   {"type":"message","channel":C,"offset":O,"epoch":"E","data":D}
 *   \_______________ head(C) ______________/ \EPOCH_OPEN/ \_ tail(D) _/
 *
 * The frame is written in four places that must agree byte for byte: the bus payload the memory
 * store builds ({@link buildMessagePayload}), the one the Redis script builds
 * ({@link luaMessagePayload} generates its expression from the same constants), the frames of
 * recovered messages ({@link encodeMessage}), and {@link MessageScanner}, which reads offset and
 * epoch back out of a payload without parsing JSON. Receiving nodes send a payload's body to
 * clients as it is, so this layout is also what clients see.
 *
 * The epoch is written between quotes without JSON escaping: epochs are random hex ids
 * (brokers/memory/stores.ts newEpoch), which need none. `data` is JSON text, spliced in unparsed.
 */
import { encodeEnvelope, EnvelopeKind } from './envelope.js';
import type { MessageFrame } from './frames.js';
import { DATA_OPEN, DELTA_OPEN, EPOCH_OPEN, FRAME_CLOSE } from './message-text.js';

/** `{"type":"message","channel":C,"offset":`: the frame up to the offset digits. */
export function messageHead(channel: string): string {
  return `{"type":"message","channel":${JSON.stringify(channel)},"offset":`;
}

export { EPOCH_OPEN, DATA_OPEN, FRAME_CLOSE } from './message-text.js';

/** `","data":D}`: what follows the epoch. */
export function messageTail(data: string): string {
  return `${DATA_OPEN}${data}${FRAME_CLOSE}`;
}

/** A `message` frame's JSON from its parts; `data` is JSON text. The frame a client receives. */
export function encodeMessage(channel: string, offset: number, epoch: string, data: string): string {
  return `${messageHead(channel)}${offset}${EPOCH_OPEN}${epoch}${messageTail(data)}`;
}

/** The same frame from a typed {@link MessageFrame} (data as a value, stringified here). */
export function encodeMessageFrame(frame: MessageFrame & { readonly epoch: string }): string {
  return encodeMessage(frame.channel, frame.offset, frame.epoch, JSON.stringify(frame.data));
}

/**
 * The bus payload of a channel message up to the offset digits: the envelope header (kind
 * CHANNEL, the publishing node, the publish time) and {@link messageHead}. Every channel store
 * builds its payloads from it: the memory store and the Redis script at publish, the JetStream and
 * Kafka stores when their log hands a message over (`publishedAt` from the log's record).
 */
export function channelPayloadHead(channel: string, origin: string, publishedAt?: number): Buffer {
  return encodeEnvelope(EnvelopeKind.CHANNEL, origin, Buffer.from(messageHead(channel)), publishedAt);
}

/**
 * A channel message's bus payload: `head` (envelope header + {@link messageHead}), then offset,
 * epoch and data. The memory store's path; the Redis script builds the same bytes.
 */
export function buildMessagePayload(head: Buffer, offset: number, epoch: string, data: string): Buffer {
  return Buffer.concat([head, Buffer.from(`${offset}${EPOCH_OPEN}${epoch}${messageTail(data)}`)]);
}

/** Lua expressions (variables, ARGV slots) that hold the parts of a payload inside a script. */
export interface LuaPayloadParts {
  /** The head: envelope header + {@link messageHead}, as the node passed it. */
  readonly head: string;
  /** The offset (a Lua integer; `..` writes its digits). */
  readonly offset: string;
  readonly epoch: string;
  /** The data's JSON text. */
  readonly data: string;
}

/**
 * The Lua expression that concatenates a payload laid out as {@link buildMessagePayload} does,
 * e.g. `ARGV[5] .. offset .. ',"epoch":"' .. epoch .. '","data":' .. ARGV[6] .. '}'`. Generated
 * from this module's constants so the script cannot drift from the TypeScript side.
 */
export function luaMessagePayload(parts: LuaPayloadParts): string {
  return [parts.head, parts.offset, luaString(EPOCH_OPEN), parts.epoch, luaString(DATA_OPEN), parts.data, luaString(FRAME_CLOSE)].join(' .. ');
}

/** A single-quoted Lua string literal of `text`. */
function luaString(text: string): string {
  return `'${text.replace(/[\\'\n\r\0]/g, (c) => LUA_ESCAPES[c]!)}'`;
}

const LUA_ESCAPES: Readonly<Record<string, string>> = { '\\': '\\\\', "'": "\\'", '\n': '\\n', '\r': '\\r', '\0': '\\0' };

const EPOCH_OPEN_BYTES = Buffer.from(EPOCH_OPEN, 'latin1');
const DATA_OPEN_BYTES = Buffer.from(DATA_OPEN, 'latin1');
const DELTA_OPEN_BYTES = Buffer.from(DELTA_OPEN, 'latin1');
const FRAME_CLOSE_BYTES = Buffer.from(FRAME_CLOSE, 'latin1');
const QUOTE = 0x22;
const DIGIT_0 = 0x30;
const DIGIT_9 = 0x39;

/**
 * Reads the offset and epoch of one channel's `message` payload bodies (the frame's JSON, after
 * the envelope) by scanning a few bytes, with no JSON parsing: it runs for every message on every
 * node. The epoch string is only allocated when it changes; in the steady state a scan allocates
 * nothing.
 *
 * Holds the last position seen (or {@link set}), so a channel can use it as its position.
 */
export class MessageScanner {
  /** Byte length of {@link messageHead}: where a body's offset digits start. */
  readonly offsetAt: number;
  /** The last offset scanned or set; 0 before any. */
  offset = 0;
  /** The last epoch scanned or set; undefined before any. */
  epoch: string | undefined;
  /** In the last body scanned: where its epoch's closing quote is, and where its `data` text starts (-1: not laid out so). */
  epochEnd = -1;
  dataAt = -1;
  private epochBytes: Buffer | undefined;

  constructor(channel: string) {
    this.offsetAt = Buffer.byteLength(messageHead(channel));
  }

  /**
   * Takes the offset and epoch of `body`, a `message` frame of this scanner's channel. Returns
   * false, and keeps the position, when the bytes after the head are not laid out as digits,
   * {@link EPOCH_OPEN}, epoch, quote.
   */
  scan(body: Buffer): boolean {
    let i = this.offsetAt;
    let offset = 0;
    for (let c = body[i]; c !== undefined && c >= DIGIT_0 && c <= DIGIT_9; c = body[++i]) offset = offset * 10 + (c - DIGIT_0);
    if (i === this.offsetAt) return false;
    const start = i + EPOCH_OPEN_BYTES.length;
    if (start > body.length || body.compare(EPOCH_OPEN_BYTES, 0, EPOCH_OPEN_BYTES.length, i, start) !== 0) return false;
    const end = body.indexOf(QUOTE, start);
    if (end < 0) return false;
    const known = this.epochBytes;
    if (known && body.compare(known, 0, known.length, start, end) === 0) this.offset = offset;
    else this.set(offset, body.toString('latin1', start, end));
    this.epochEnd = end;
    const dataAt = end + DATA_OPEN_BYTES.length;
    this.dataAt = dataAt < body.length && body.compare(DATA_OPEN_BYTES, 0, DATA_OPEN_BYTES.length, end, dataAt) === 0 ? dataAt : -1;
    return true;
  }

  /** Sets the position from elsewhere (a read of the store). */
  set(offset: number, epoch: string): void {
    this.offset = offset;
    this.epochEnd = -1;
    this.dataAt = -1;
    if (epoch !== this.epoch) {
      this.epoch = epoch;
      this.epochBytes = Buffer.from(epoch, 'latin1');
    }
  }
}

/**
 * The delta form of a scanned `message` payload body: its bytes up to the end of the epoch
 * ({@link MessageScanner.epochEnd}), then `","encoding":"fossil","delta":` and the delta's JSON
 * string (message-text.ts draws both forms).
 */
export function deltaMessageBody(body: Buffer, epochEnd: number, deltaJson: string): Buffer {
  return Buffer.concat([body.subarray(0, epochEnd), DELTA_OPEN_BYTES, Buffer.from(deltaJson), FRAME_CLOSE_BYTES]);
}
