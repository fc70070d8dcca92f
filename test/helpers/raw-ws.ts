/**
 * A raw TCP WebSocket peer for tests that must send what no well-behaved client sends: bad
 * frames, reserved bits, unmasked frames, huge length headers, tiny fragments; or that must
 * misbehave (never read, never answer pings). Parses just enough of the server's frames to
 * report its close code.
 */
import { randomBytes } from 'node:crypto';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { Changes, until } from '../../harness/wait.js';

export interface RawResponse {
  readonly status: number;
  readonly headers: string;
}

export class RawPeer {
  private buffer = Buffer.alloc(0);
  private headerDone = false;
  private readonly changes = new Changes();
  /** The HTTP answer to the handshake, once received. */
  response: RawResponse | undefined;
  /** Close code of the server's close frame, if one arrived. */
  closeCode: number | undefined;
  /** Opcodes of the frames received (after the handshake). */
  readonly opcodes: number[] = [];
  /** Texts of the text frames received. */
  readonly texts: string[] = [];
  /** Pings the server sent. */
  pings = 0;
  /** The TCP connection ended or was destroyed. */
  ended = false;

  constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('close', () => {
      this.ended = true;
      this.changes.notify();
    });
    socket.on('error', () => {});
  }

  private onData(chunk: Buffer): void {
    this.buffer = Buffer.concat([this.buffer, chunk]);
    if (!this.headerDone) {
      const end = this.buffer.indexOf('\r\n\r\n');
      if (end === -1) return;
      const head = this.buffer.subarray(0, end).toString('latin1');
      this.response = { status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0), headers: head };
      this.buffer = this.buffer.subarray(end + 4);
      this.headerDone = true;
      if (this.response.status !== 101) this.buffer = Buffer.alloc(0);
    }
    if (this.response?.status === 101) this.parseFrames();
    this.changes.notify();
  }

  private parseFrames(): void {
    for (;;) {
      if (this.buffer.length < 2) return;
      const opcode = this.buffer[0]! & 0x0f;
      let len = this.buffer[1]! & 0x7f;
      let offset = 2;
      if (len === 126) {
        if (this.buffer.length < 4) return;
        len = this.buffer.readUInt16BE(2);
        offset = 4;
      } else if (len === 127) {
        if (this.buffer.length < 10) return;
        len = Number(this.buffer.readBigUInt64BE(2));
        offset = 10;
      }
      if (this.buffer.length < offset + len) return;
      const payload = this.buffer.subarray(offset, offset + len);
      this.buffer = this.buffer.subarray(offset + len);
      this.opcodes.push(opcode);
      if (opcode === 0x8) this.closeCode = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
      else if (opcode === 0x9) this.pings++;
      else if (opcode === 0x1) this.texts.push(payload.toString());
    }
  }

  /** Waits until `predicate` holds (checked on every chunk and on close). */
  until(predicate: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
    // Also re-checked every 200 ms: a predicate may read state other than this peer's.
    return until(predicate, { wake: this.changes, intervalMs: 200, timeoutMs, what: `${what} (raw peer)` });
  }

  /** Resolves with the server's close code (or undefined if the TCP connection just ended). */
  async closed(timeoutMs = 5000): Promise<number | undefined> {
    await this.until(() => this.closeCode !== undefined || this.ended, timeoutMs, 'close');
    return this.closeCode;
  }

  write(data: Buffer | string): void {
    if (!this.socket.destroyed) this.socket.write(data);
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** Opens a TCP (or TLS) connection to host:port. */
export function rawConnect(port: number, options: { host?: string; tls?: boolean; localAddress?: string } = {}): Promise<RawPeer> {
  const host = options.host ?? '127.0.0.1';
  return new Promise((resolve, reject) => {
    const socket = options.tls
      ? tlsConnect({ host, port, rejectUnauthorized: false, servername: 'localhost' })
      : netConnect({ host, port, localAddress: options.localAddress });
    socket.once('error', reject);
    socket.once(options.tls ? 'secureConnect' : 'connect', () => {
      socket.off('error', reject);
      resolve(new RawPeer(socket));
    });
  });
}

/** A valid upgrade request for `path`, with extra header lines. */
export function handshake(path = '/ws/echo', extra: readonly string[] = [], host = '127.0.0.1'): string {
  const key = randomBytes(16).toString('base64');
  return [`GET ${path} HTTP/1.1`, `Host: ${host}`, 'Upgrade: websocket', 'Connection: Upgrade', `Sec-WebSocket-Key: ${key}`, 'Sec-WebSocket-Version: 13', ...extra, '', ''].join('\r\n');
}

/** Connects and completes a WebSocket handshake; throws when the answer is not 101. */
export async function rawUpgrade(port: number, options: { path?: string; headers?: readonly string[]; tls?: boolean; localAddress?: string } = {}): Promise<RawPeer> {
  const peer = await rawConnect(port, options);
  peer.write(handshake(options.path, options.headers));
  await peer.until(() => peer.response !== undefined || peer.ended, 5000, 'handshake answer');
  if (peer.response?.status !== 101) {
    peer.destroy();
    throw new Error(`handshake answered ${peer.response?.status ?? 'nothing'}`);
  }
  return peer;
}

export interface FrameOptions {
  fin?: boolean;
  /** Reserved bits RSV1–3 as a 3-bit number. */
  rsv?: number;
  mask?: boolean;
  /** Override the length written in the header (for lying length headers). */
  declaredLength?: number;
}

/** Encodes one client frame (masked unless told otherwise). */
export function frame(opcode: number, payload: Buffer | string, options: FrameOptions = {}): Buffer {
  const data = typeof payload === 'string' ? Buffer.from(payload) : payload;
  const fin = options.fin ?? true;
  const mask = options.mask ?? true;
  const len = options.declaredLength ?? data.length;
  const parts: Buffer[] = [];
  const b0 = (fin ? 0x80 : 0) | ((options.rsv ?? 0) << 4) | opcode;
  const maskBit = mask ? 0x80 : 0;
  if (len < 126) parts.push(Buffer.from([b0, maskBit | len]));
  else if (len < 65536) {
    const h = Buffer.alloc(4);
    h[0] = b0;
    h[1] = maskBit | 126;
    h.writeUInt16BE(len, 2);
    parts.push(h);
  } else {
    const h = Buffer.alloc(10);
    h[0] = b0;
    h[1] = maskBit | 127;
    h.writeBigUInt64BE(BigInt(len), 2);
    parts.push(h);
  }
  if (mask) {
    const key = randomBytes(4);
    const masked = Buffer.alloc(data.length);
    for (let i = 0; i < data.length; i++) masked[i] = data[i]! ^ key[i % 4]!;
    parts.push(key, masked);
  } else parts.push(data);
  return Buffer.concat(parts);
}

/** A masked close frame with `code`. */
export function closeFrame(code: number): Buffer {
  const payload = Buffer.alloc(2);
  payload.writeUInt16BE(code);
  return frame(0x8, payload);
}
