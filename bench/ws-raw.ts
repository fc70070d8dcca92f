/**
 * A bare WebSocket client over a raw TCP socket, for the load generator: it costs little per
 * frame so that the servers, not the client, are measured.
 *
 * It sends the HTTP upgrade itself, parses unmasked server frames straight out of the socket's
 * chunks (copying only a frame split across chunks), answers pings, and masks its own frames
 * with an all-zero key (legal: the key is random only to protect browsers' intermediaries, which
 * a benchmark on loopback has none of; a zero key keeps the payload bytes as they are).
 *
 * Four protocols ride on it: plain text (Fanout /ws/echo, express-ws), the Fanout channel
 * protocol (JSON), Socket.IO (Engine.IO v4 packets in text frames) and Pusher as pusher-js speaks
 * it (pusher-wire.ts).
 */
import { connect, type Socket } from 'node:net';
import { isPusherPing, PUSHER_JS_PONG, pusherSetup, pusherSubscribe } from './pusher-wire.js';

/** Which application protocol a client speaks over the WebSocket. */
export type WireProtocol = 'text' | 'socketio' | 'channel' | 'pusher';

export interface RawClientOptions {
  readonly host: string;
  readonly port: number;
  /** Request path (with query for Socket.IO). */
  readonly path: string;
  readonly protocol: WireProtocol;
  /** Source address (127.0.0.x) so large runs are not limited to one address's ephemeral ports. */
  readonly localAddress?: string | undefined;
  /** For the channel and Pusher protocols: the channel to subscribe to once connected. */
  readonly channel?: string | undefined;
  /** For the channel protocol: subscribe with `"delta":true` (bench/delta.ts). */
  readonly delta?: boolean | undefined;
  /** Called with a text payload's bytes (a view into the chunk: use it before returning). */
  readonly onText: (data: Buffer, start: number, end: number, now: number) => void;
  /** Called once the application-level session is ready (subscribed, Socket.IO connected, …). */
  readonly onReady: () => void;
  /** Called once when the connection fails or ends. */
  readonly onClose: (reason: string) => void;
}

const OP_TEXT = 1;
const OP_CLOSE = 8;
const OP_PING = 9;
const MASK_KEY = Buffer.alloc(4);
const HEADER_END = Buffer.from('\r\n\r\n');

/** Microseconds on a clock shared by every thread of this process. */
export function nowMicros(): number {
  return Math.round((performance.timeOrigin + performance.now()) * 1000);
}

/** One client-to-server frame (masked with a zero key, so the payload is copied as is). */
export function clientFrame(payload: Buffer | string, opcode = OP_TEXT): Buffer {
  const data = typeof payload === 'string' ? Buffer.from(payload) : payload;
  const len = data.length;
  const head = len < 126 ? 6 : len < 65536 ? 8 : 14;
  const frame = Buffer.allocUnsafe(head + len);
  frame[0] = 0x80 | opcode;
  if (len < 126) {
    frame[1] = 0x80 | len;
  } else if (len < 65536) {
    frame[1] = 0x80 | 126;
    frame.writeUInt16BE(len, 2);
  } else {
    frame[1] = 0x80 | 127;
    frame.writeBigUInt64BE(BigInt(len), 2);
  }
  MASK_KEY.copy(frame, head - 4);
  data.copy(frame, head);
  return frame;
}

const SIO_PONG = clientFrame('3');
const SIO_CONNECT = clientFrame('40');
const PUSHER_PONG = clientFrame(PUSHER_JS_PONG);

export class RawClient {
  readonly socket: Socket;
  ready = false;
  closed = false;
  private upgraded = false;
  private pending: Buffer | null = null;

  constructor(private readonly options: RawClientOptions) {
    this.socket = connect({ host: options.host, port: options.port, localAddress: options.localAddress });
    this.socket.setNoDelay(true);
    this.socket.on('connect', () => {
      this.socket.write(
        `GET ${options.path} HTTP/1.1\r\nHost: ${options.host}:${options.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          'Sec-WebSocket-Key: ZmFub3V0LWJlbmNobWFyaw==\r\nSec-WebSocket-Version: 13\r\n\r\n',
      );
    });
    this.socket.on('data', (chunk: Buffer) => this.onData(chunk));
    this.socket.on('error', (err) => this.end(err.message));
    this.socket.on('close', () => this.end('closed'));
  }

  /** Sends pre-built frames (the publisher's batch) in one write. */
  sendRaw(frames: Buffer): void {
    if (!this.closed) this.socket.write(frames);
  }

  close(): void {
    this.socket.destroy();
    this.end('closed by client');
  }

  private end(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.destroy();
    this.options.onClose(reason);
  }

  private onData(chunk: Buffer): void {
    let buf = chunk;
    if (this.pending !== null) {
      buf = Buffer.concat([this.pending, chunk]);
      this.pending = null;
    }
    let pos = 0;
    if (!this.upgraded) {
      const end = buf.indexOf(HEADER_END);
      if (end === -1) {
        this.pending = buf;
        return;
      }
      const status = buf.toString('latin1', 0, Math.min(end, 40));
      if (!status.startsWith('HTTP/1.1 101')) {
        this.end(`upgrade refused: ${status.split('\r\n')[0]}`);
        return;
      }
      this.upgraded = true;
      pos = end + 4;
      this.onUpgraded();
    }
    const now = nowMicros();
    const length = buf.length;
    while (pos + 2 <= length) {
      const b0 = buf[pos]!;
      let len = buf[pos + 1]! & 0x7f;
      let head = 2;
      if (len === 126) {
        if (pos + 4 > length) break;
        len = buf.readUInt16BE(pos + 2);
        head = 4;
      } else if (len === 127) {
        if (pos + 10 > length) break;
        len = Number(buf.readBigUInt64BE(pos + 2));
        head = 10;
      }
      const start = pos + head;
      const end = start + len;
      if (end > length) break;
      const opcode = b0 & 0x0f;
      if (opcode === OP_TEXT) this.onFrame(buf, start, end, now);
      else if (opcode === OP_PING) this.socket.write(clientFrame(buf.subarray(start, end), 0x0a));
      else if (opcode === OP_CLOSE) {
        this.end(`server closed${len >= 2 ? ` ${buf.readUInt16BE(start)}` : ''}`);
        return;
      }
      // Continuation frames never occur: every server here sends its messages unfragmented.
      pos = end;
    }
    if (pos < length) this.pending = pos === 0 ? buf : buf.subarray(pos);
  }

  private onUpgraded(): void {
    const { protocol, channel } = this.options;
    if (protocol === 'text') this.markReady();
    else if (protocol === 'channel') this.socket.write(clientFrame(JSON.stringify({ type: 'subscribe', channel, id: 1, ...(this.options.delta ? { delta: true } : {}) })));
    // Socket.IO: wait for the Engine.IO open packet; Pusher: for pusher:connection_established.
  }

  private markReady(): void {
    if (this.ready) return;
    this.ready = true;
    this.options.onReady();
  }

  private onFrame(buf: Buffer, start: number, end: number, now: number): void {
    if (this.ready) {
      if (this.options.protocol === 'socketio' && end - start === 1 && buf[start] === 0x32) {
        this.socket.write(SIO_PONG); // Engine.IO ping "2" → pong "3"
        return;
      }
      if (this.options.protocol === 'pusher' && isPusherPing(buf, start, end)) {
        this.socket.write(PUSHER_PONG);
        return;
      }
      this.options.onText(buf, start, end, now);
      return;
    }
    // Session set-up frames, before the measured stream.
    const text = buf.toString('utf8', start, Math.min(end, start + 200));
    if (this.options.protocol === 'socketio') {
      if (text.startsWith('0{')) this.socket.write(SIO_CONNECT);
      else if (text.startsWith('40')) this.markReady();
      else if (text === '2') this.socket.write(SIO_PONG);
    } else if (this.options.protocol === 'channel') {
      if (text.includes('"type":"subscribed"')) this.markReady();
      else if (text.includes('"type":"error"')) this.end(`subscribe refused: ${text}`);
    } else if (this.options.protocol === 'pusher') {
      const step = pusherSetup(text);
      if (step === 'established') this.socket.write(clientFrame(pusherSubscribe(this.options.channel ?? '')));
      else if (step === 'subscribed') this.markReady();
      else if (step === 'refused') this.end(`subscribe refused: ${text}`);
    }
  }
}

/**
 * Reads a benchmark message's sequence number and send time from a payload holding
 * `#<seq>|<micros>#` anywhere in it (after `Received: `, inside a Socket.IO event or a channel
 * message's JSON). Returns the sequence number, and the send time in `out[0]`; -1 when absent.
 */
export function parseStamp(buf: Buffer, start: number, end: number, out: Float64Array): number {
  const hash = buf.indexOf(0x23, start);
  if (hash === -1 || hash >= end) return -1;
  let i = hash + 1;
  let seq = 0;
  let c = buf[i]!;
  while (c >= 0x30 && c <= 0x39 && i < end) {
    seq = seq * 10 + (c - 0x30);
    c = buf[++i]!;
  }
  if (c !== 0x7c) return -1;
  let t = 0;
  c = buf[++i]!;
  while (c >= 0x30 && c <= 0x39 && i < end) {
    t = t * 10 + (c - 0x30);
    c = buf[++i]!;
  }
  if (c !== 0x23) return -1;
  out[0] = t;
  return seq;
}

/** The payload of benchmark message `seq` sent at `micros`. */
export function stamp(seq: number, micros: number): string {
  return `#${seq}|${micros}#`;
}
