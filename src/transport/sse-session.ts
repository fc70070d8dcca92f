/**
 * One SSE session (docs/protocol.md, "SSE transport") as the node sees a WebSocket: the same
 * events (`message`, `pong`, `close`) for node/sockets.ts and the same pre-framed writes for the
 * outbox and the heartbeat, so the channel endpoint, the rate limits, the slow-consumer rule,
 * drain and expiry drive it exactly as they drive a socket: no second copy of the protocol.
 *
 * Writes arrive as complete unmasked WebSocket frames (one or several per write, as the outbox
 * batches them). Each text frame becomes one SSE event, `id:` its position in the session and
 * `data:` the frame's JSON as it is (the JSON the node writes holds no raw line break); a ping
 * frame becomes an SSE comment. A close becomes a last event named `close` with
 * `{"code","reason"}`, then the response ends.
 *
 * Liveness: an SSE comment every --heartbeat ({@link SseSession.comment}) keeps proxies from
 * cutting an idle stream. The heartbeat wheel's pings and every write check that the stream moves:
 * one that could not be written for {@link SseOptions.stuckMs} (--heartbeat × 3) is cut (1006);
 * otherwise a ping counts as answered.
 *
 * Resuming: when the response closes, the session waits {@link RESUME_MS} for a `GET` with its id
 * and `Last-Event-ID`. What is written meanwhile is kept (and counts as unsent bytes: past
 * --max-buffered the outbox closes it as a slow consumer), and the recent events before the cut
 * are kept too (at most {@link REPLAY_BYTES}), so a resume replays every event after the one the
 * client last saw, or is refused when that one is no longer kept.
 *
 * Plain mode (`GET /ws/v1/sse?channel=…`, for `EventSource` and `curl`): each event is also named
 * after the frame's `type`, and its id is the position of every channel (see {@link PlainPositions}),
 * so a reconnect on any node recovers every channel from history. Plain sessions do not resume.
 */
import { EventEmitter } from 'node:events';
import type { ServerResponse } from 'node:http';
import { CloseCode } from '../errors.js';
import type { ClientSocket, ClientWire } from './client.js';

/** What events are written to: the response's socket, or the response. */
interface Writable {
  write(chunk: Buffer | string): boolean;
  readonly writableLength: number;
  on(event: 'drain', listener: () => void): unknown;
  off(event: 'drain', listener: () => void): unknown;
}

/** How long a session whose stream closed waits for a resume. */
export const RESUME_MS = 30_000;
/** Bytes of recent events a session keeps for a resume (the events written before the stream was cut). */
export const REPLAY_BYTES = 64 * 1024;

const OPEN = 1;
const CLOSED = 3;

export interface SseOptions {
  /** The session id (`"session"` in `connected`). */
  readonly id: string;
  /** Plain EventSource mode: events named after their type, ids are channel positions, no resume. */
  readonly plain: boolean;
  /** A stream that could not be written for this long is cut; 0: never. */
  readonly stuckMs: number;
  /** Positions to start from in plain mode (from `Last-Event-ID`). */
  readonly positions?: PlainPositions | undefined;
}

interface Kept {
  readonly n: number;
  readonly payload: Buffer;
}

const COMMENT = Buffer.from(':\n\n');
const NL2 = Buffer.from('\n\n');

export class SseSession extends EventEmitter implements ClientWire, ClientSocket {
  readonly id: string;
  readonly plain: boolean;
  readyState = OPEN;
  /** Bytes handed to the stream (or kept for a resume), as a socket's bytesWritten. */
  bytesWritten = 0;
  private res: ServerResponse | undefined;
  /**
   * Where events are written: the response's socket itself when the response is not chunked
   * (node/sse.ts sends streams without chunked encoding, delimited by the connection's close), so
   * an event costs one socket write and nothing of Node's HTTP layer; else the response.
   */
  private out: Writable | undefined;
  /** The response a close ended, until it is out or cut. */
  private ending: ServerResponse | undefined;
  private position = 0;
  private readonly kept: Kept[] = [];
  private keptBytes = 0;
  /** While detached: bytes written since the stream closed, and when it closed. */
  private heldBytes = 0;
  private resumeTimer: NodeJS.Timeout | undefined;
  /** Last time the stream was seen with nothing unsent. */
  private flowingAt = Date.now();
  private readonly stuckMs: number;
  private readonly positions: PlainPositions | undefined;
  private readonly onResClose = (): void => this.detach();
  private readonly onResDrain = (): void => {
    this.flowingAt = Date.now();
    this.emit('drain');
  };

  constructor(options: SseOptions) {
    super();
    this.id = options.id;
    this.plain = options.plain;
    this.stuckMs = options.stuckMs;
    this.positions = options.plain ? (options.positions ?? new PlainPositions()) : undefined;
  }

  /** Unsent bytes: the response's and its socket's, or, while detached, what was written since. */
  get writableLength(): number {
    return this.out ? this.out.writableLength : this.heldBytes;
  }

  get destroyed(): boolean {
    return this.readyState === CLOSED;
  }

  /** True while a stream is attached. */
  get attached(): boolean {
    return this.res !== undefined;
  }

  /** Takes `res` as the session's stream (headers already written), replaying what came after `after` (a resume). */
  attach(res: ServerResponse, after?: number): boolean {
    if (this.readyState !== OPEN) return false;
    if (after !== undefined && !this.canResume(after)) return false;
    // A resume while the old stream still looks open (a half-open connection the node has not
    // noticed yet): the new stream takes over, the old one is cut.
    const old = this.res;
    if (old) {
      old.off('close', this.onResClose);
      this.out?.off('drain', this.onResDrain);
      this.res = this.out = undefined;
      old.destroy();
    }
    clearTimeout(this.resumeTimer);
    this.resumeTimer = undefined;
    this.res = res;
    const out: Writable = res.useChunkedEncodingByDefault === false && res.socket ? (res.socket as Writable) : (res as Writable);
    this.out = out;
    this.heldBytes = 0;
    this.flowingAt = Date.now();
    res.on('close', this.onResClose);
    out.on('drain', this.onResDrain);
    if (after !== undefined) {
      const missed = this.kept.filter((k) => k.n > after).map((k) => this.event(k.n, k.payload));
      if (missed.length > 0) out.write(Buffer.concat(missed));
    }
    // Frames the outbox held while there was no stream go out now.
    this.emit('drain');
    return true;
  }

  /** True when every event after `after` is still kept. */
  canResume(after: number): boolean {
    if (this.plain || !Number.isSafeInteger(after) || after < 0 || after > this.position) return false;
    const first = this.kept[0];
    return after === this.position || (first !== undefined && first.n <= after + 1);
  }

  /** The stream closed under the session: it waits for a resume, or ends now in plain mode. */
  private detach(): void {
    const res = this.res;
    if (!res) return;
    res.off('close', this.onResClose);
    this.out?.off('drain', this.onResDrain);
    this.res = this.out = undefined;
    if (this.readyState !== OPEN) return;
    if (this.plain) return this.finish(CloseCode.ABNORMAL);
    this.resumeTimer = setTimeout(() => this.finish(CloseCode.ABNORMAL), RESUME_MS);
    this.resumeTimer.unref();
  }

  /** Takes pre-framed WebSocket frames: text frames become events, pings comments. */
  write(chunk: Buffer): boolean {
    if (this.readyState !== OPEN) return false;
    const events: Buffer[] = [];
    let at = 0;
    while (at + 2 <= chunk.length) {
      const opcode = chunk[at]! & 0x0f;
      let length = chunk[at + 1]! & 0x7f;
      let start = at + 2;
      if (length === 126) {
        length = chunk.readUInt16BE(at + 2);
        start = at + 4;
      } else if (length === 127) {
        length = Number(chunk.readBigUInt64BE(at + 2));
        start = at + 10;
      }
      const payload = chunk.subarray(start, start + length);
      at = start + length;
      if (opcode === 0x1) events.push(this.text(payload));
      else if (opcode === 0x9) this.ping();
    }
    if (events.length === 0) return true;
    const bytes = events.length === 1 ? events[0]! : Buffer.concat(events);
    this.bytesWritten += bytes.length;
    const out = this.out;
    if (!out) {
      this.heldBytes += bytes.length;
      return false;
    }
    if (out.writableLength === 0) this.flowingAt = Date.now();
    else if (this.stuckMs > 0 && Date.now() - this.flowingAt > this.stuckMs) {
      this.terminate();
      return false;
    }
    return out.write(bytes);
  }

  /** One text frame: the event, kept for a resume (session mode). */
  private text(payload: Buffer): Buffer {
    const n = ++this.position;
    if (this.positions) return this.plainEvent(payload);
    this.keep(n, payload);
    return this.event(n, payload);
  }

  /** `id: N\ndata: PAYLOAD\n\n` in one allocation (this runs per session per frame). */
  private event(n: number, payload: Buffer): Buffer {
    const head = `id: ${n}\ndata: `;
    const bytes = Buffer.allocUnsafe(head.length + payload.length + 2);
    bytes.write(head, 0, 'latin1');
    payload.copy(bytes, head.length);
    bytes[bytes.length - 2] = 0x0a;
    bytes[bytes.length - 1] = 0x0a;
    return bytes;
  }

  private plainEvent(payload: Buffer): Buffer {
    const type = frameType(payload);
    const positions = this.positions!;
    // The id says where every channel is; an event that moves none has no id (the client keeps the last one).
    const id = positions.take(type, payload) ? positions.encoded() : '';
    return Buffer.concat([Buffer.from(`${id === '' ? '' : `id: ${id}\n`}event: ${type ?? 'frame'}\ndata: `), payload, NL2]);
  }

  private keep(n: number, payload: Buffer): void {
    this.kept.push({ n, payload });
    this.keptBytes += payload.length;
    // While detached, everything since the cut stays (bounded by --max-buffered through writableLength).
    if (!this.out) return;
    while (this.keptBytes > REPLAY_BYTES && this.kept.length > 1) this.keptBytes -= this.kept.shift()!.payload.length;
  }

  /** The heartbeat wheel's ping: a pong while the stream moves, a cut once it is stuck (see the top of this file). */
  private ping(): void {
    if (this.stuck()) return void queueMicrotask(() => this.terminate());
    this.emit('pong');
  }

  /** True when the attached stream has had unsent bytes for longer than --heartbeat × 3. */
  private stuck(): boolean {
    const out = this.out;
    if (!out) return false;
    if (out.writableLength === 0) this.flowingAt = Date.now();
    else if (this.stuckMs > 0 && Date.now() - this.flowingAt > this.stuckMs) return true;
    return false;
  }

  /** The SSE comment written every --heartbeat (node/sse.ts), so that proxies never see an idle stream. */
  comment(): void {
    if (this.readyState !== OPEN || !this.out) return;
    if (this.stuck()) return this.terminate();
    // Not counted in bytesWritten: a client cannot see comments (EventSource, the SDK), so the
    // node's idle `ping` frame (node/sockets.ts, which watches bytesWritten) still comes.
    this.out.write(COMMENT);
  }

  /** Ends the session with `code`: a last `close` event, then the response ends (a later {@link terminate} cuts it if it is still not out). */
  close(code: number = CloseCode.NORMAL, reason = ''): void {
    if (this.readyState !== OPEN) return;
    const res = this.res;
    if (res && !res.writableEnded) {
      this.out!.write(`event: close\ndata: ${JSON.stringify({ code, reason })}\n\n`);
      res.end();
      this.ending = res;
    }
    this.finish(code);
  }

  /** Cuts the stream at once (1006); after a close, cuts a stream whose last bytes are still not out. */
  terminate(): void {
    const ending = this.ending;
    this.ending = undefined;
    if (ending && !ending.writableFinished) ending.destroy();
    if (this.readyState !== OPEN) return;
    this.res?.destroy();
    this.finish(CloseCode.ABNORMAL);
  }

  private finish(code: number): void {
    if (this.readyState === CLOSED) return;
    this.readyState = CLOSED;
    clearTimeout(this.resumeTimer);
    const res = this.res;
    if (res) {
      res.off('close', this.onResClose);
      this.out?.off('drain', this.onResDrain);
      this.res = this.out = undefined;
      if (!res.writableEnded) res.end();
    }
    this.kept.length = 0;
    this.emit('close', code);
  }

  /** Frames a client POSTed, for node/sockets.ts as a socket's messages. */
  receive(frame: Buffer): void {
    if (this.readyState === OPEN) this.emit('message', frame, false);
  }
}

/** The `type` of a frame the node wrote (its JSON starts with it), or undefined. */
export function frameType(payload: Buffer): string | undefined {
  const m = /^\{"type":"([a-z_]+)"/.exec(payload.toString('latin1', 0, Math.min(payload.length, 40)));
  return m?.[1];
}

const POSITION_HEAD = /^\{"type":"(?:message|subscribed)","channel":("(?:[^"\\]|\\.)*")(?:,"id":\d+)?,"offset":(\d+),"epoch":"([0-9A-Za-z_-]*)"/;

/**
 * Plain mode's event ids: where each channel is (offset and epoch), as base64url JSON
 * `{"channel":[offset,"epoch"]}`, taken from the `message` and `subscribed` frames as they pass.
 * `Last-Event-ID` gives it back on a reconnect, to any node: each channel is subscribed with
 * `since` from there. Bounded by --max-subscriptions (a channel leaves it when unsubscribed).
 */
export class PlainPositions {
  private readonly map = new Map<string, [number, string]>();

  /** Positions from a `Last-Event-ID`; empty when it cannot be read. */
  static parse(id: string | undefined, maxChannels: number): PlainPositions {
    const positions = new PlainPositions();
    if (!id || id.length > 64 * 1024) return positions;
    try {
      const value: unknown = JSON.parse(Buffer.from(id, 'base64url').toString('utf8'));
      if (typeof value !== 'object' || value === null || Array.isArray(value)) return positions;
      for (const [channel, at] of Object.entries(value as Record<string, unknown>)) {
        if (positions.map.size >= maxChannels) break;
        if (Array.isArray(at) && at.length === 2 && Number.isSafeInteger(at[0]) && (at[0] as number) >= 0 && typeof at[1] === 'string') {
          positions.map.set(channel, [at[0] as number, at[1]]);
        }
      }
    } catch {
      // Not ours: every channel starts afresh.
    }
    return positions;
  }

  /** The position a channel was at, for its `since`. */
  get(channel: string): { offset: number; epoch: string } | undefined {
    const at = this.map.get(channel);
    return at ? { offset: at[0], epoch: at[1] } : undefined;
  }

  /** Notes the position a frame carries; true when one moved. */
  take(type: string | undefined, payload: Buffer): boolean {
    if (type === 'unsubscribed') {
      const m = /"channel":("(?:[^"\\]|\\.)*")/.exec(payload.toString('utf8'));
      if (m && this.map.delete(JSON.parse(m[1]!) as string)) return true;
      return false;
    }
    if (type !== 'message' && type !== 'subscribed') return false;
    const m = POSITION_HEAD.exec(payload.toString('utf8', 0, Math.min(payload.length, 1024)));
    if (!m) return false;
    this.map.set(JSON.parse(m[1]!) as string, [Number(m[2]), m[3]!]);
    return true;
  }

  /** The id of the positions now: `-` when no channel has one (an empty id would reset the client's). */
  encoded(): string {
    return this.map.size === 0 ? '-' : Buffer.from(JSON.stringify(Object.fromEntries(this.map))).toString('base64url');
  }
}
