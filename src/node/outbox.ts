/**
 * The broadcast path: frame once, queue per socket, write once per socket per flush.
 *
 * Why: on this path the cost is writes, not bytes. HAProxy and the kernel pay per write, so a
 * message is framed once per node ({@link frameText}), every socket it goes to gets a reference
 * to the same bytes, and all the frames a socket gets before the flush (at the end of the
 * event-loop turn, setImmediate) go out as one write. No JSON and no framing happen per client.
 *
 * Under sustained traffic, flushes are also spaced so that a socket's frames from several
 * messages share one write (`coalesceMs`, --coalesce-ms). A number fixes the least gap from one
 * flush to the next (0: every turn that queued something). By default (`'auto'`) the node decides
 * from how busy it is. Every {@link AUTO_WINDOW_MS} it takes its event-loop utilisation and asks
 * what it would be if every message were written on its own: each flush's cost counted once per
 * frame it gave a socket (a flush that joined 3 messages stands for 3 flushes). While that stays
 * below {@link AUTO_IDLE_BELOW}, the node has time to spare and writes at the end of every turn:
 * the least latency. Once it passes {@link AUTO_BUSY_ABOVE}, it spaces flushes by
 * {@link AUTO_FACTOR} times what the previous one took, at most {@link AUTO_MAX_MS} (writing then
 * takes about 1/{@link AUTO_FACTOR} of its time), so several messages share each write, which
 * cuts the node's CPU, HAProxy's and the kernel's, and with them the queueing that makes latency
 * at high rates (BENCHMARKS.md has the figures). In between it keeps what it did. A flush of a
 * few sockets takes microseconds, so small fan-outs never make a node busy. Either way, the first
 * message after a quiet spell is flushed at the end of its turn.
 *
 * Replies a client asked for (history, recovery after a reconnect) can be far larger than a
 * broadcast. They are queued with {@link Outbox.reply} and stream out in slices that follow the
 * socket's backpressure: once a socket holds {@link STREAM_HIGH_WATER} unsent bytes, the rest of
 * its frames (replies, and whatever comes after them, in order) wait in the socket's held queue
 * and go out on 'drain'. --max-buffered (the slow-consumer rule) judges the bytes the client did
 * not ask for: what sits unsent in the socket, or, while a reply streams, the non-reply frames
 * held behind it. A client that reads gets a reply of any size; one that stops reading is cut as
 * before. The replies themselves are bounded where they are made (channels/endpoint.ts).
 *
 * What the outbox keeps per socket is its own and exists only while there is something to keep:
 * the frames of this turn, and the held frames while a reply streams. The held frames are in a
 * map keyed by the connection ({@link Outbox.streams}; few sockets, looked up only while any
 * exist). The frames of this turn are the one thing kept on the connection itself, in the
 * `outbox` slot the Client has for it (an array, or null), because they are on the broadcast
 * path. Measured on the 2-core test machine, one frame to 10 000 sockets with writes that cost
 * nothing: a map keyed by the connection took the bookkeeping from about 45 to 175 ns per socket
 * per flush, the slot leaves it where it was (a real socket write there costs about 9 µs, so the
 * map would have been ~1.5 % of a flush: small, but paid on every message for nothing). Their
 * sizes are summed at the flush (one frame per socket is the common case).
 */
import { performance } from 'node:perf_hooks';
import { Sender } from '../transport/ws-internals.js';
import type { Client } from '../transport/client.js';

const FRAME_OPTIONS = { fin: true, rsv1: false, opcode: 1, mask: false, readOnly: false } as const;

/** A complete unmasked WebSocket text frame (server → client) holding `payload`. */
export function frameText(payload: Buffer | string): Buffer {
  const data = typeof payload === 'string' ? Buffer.from(payload) : payload;
  const parts = Sender.frame(data, FRAME_OPTIONS);
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
}

export interface OutboxOptions {
  /** Unsent bytes a socket may hold before {@link OutboxOptions.onSlowConsumer} is called. */
  readonly maxBuffered: number;
  /** Called once for a socket whose unsent bytes passed the cap. */
  readonly onSlowConsumer: (client: Client) => void;
  /** Called after each flush with the number of frames and sockets written and their bytes (metrics). */
  readonly onFlush?: (frames: number, sockets: number, bytes: number) => void;
  /** Least milliseconds from one flush to the next, or 'auto' (the default); 0 flushes at the end of every turn that queued something. */
  readonly coalesceMs?: number | 'auto';
}

/**
 * Unsent bytes a socket may hold before further frames wait in the client's held queue, while a
 * reply streams. Small enough that a reply never sits in the socket wholesale, large enough that
 * a reading client's writes stay large.
 */
export const STREAM_HIGH_WATER = 64 * 1024;

/** Frames queued with {@link Outbox.reply}: they do not count towards --max-buffered. */
const replyFrames = new WeakSet<Buffer>();

/** A socket's frames of this turn, in its Client's `outbox` slot (only the outbox reads or writes it). */
function queueOf(client: Client): Buffer[] | null {
  return client.outbox as Buffer[] | null;
}

/** Bytes of `frames`. */
function bytesOf(frames: readonly Buffer[]): number {
  let bytes = 0;
  for (const frame of frames) bytes += frame.length;
  return bytes;
}

/** Bytes of the reply frames among `frames`. */
function replyBytesOf(frames: readonly Buffer[]): number {
  let bytes = 0;
  for (const frame of frames) if (replyFrames.has(frame)) bytes += frame.length;
  return bytes;
}

/** Frames waiting for one socket to drain while a large reply streams out, in order, split into the bytes of replies and of everything else. */
interface Stream {
  held: Buffer[];
  liveBytes: number;
  replyBytes: number;
  /** A 'drain' listener is waiting to stream more of {@link held}. */
  drainListening: boolean;
}

/** In 'auto' mode, a busy node spaces flushes by this many times the previous flush's duration… */
export const AUTO_FACTOR = 4;
/** …and never more than this many milliseconds. */
export const AUTO_MAX_MS = 100;
/**
 * 'auto': a node whose event loop would be busy less than this share of the time with every
 * message written on its own writes at the end of every turn. At 25 messages/s to 1000 sockets
 * per node (15–30 ms per flush on the 2-core test machine) that is under half the time: the
 * median latency halves there against spacing, for more CPU (BENCHMARKS.md).
 */
export const AUTO_IDLE_BELOW = 0.6;
/** 'auto': above this share it spaces flushes (between the two it keeps what it did: no flapping). */
export const AUTO_BUSY_ABOVE = 0.75;
/** 'auto': how often the node looks at how busy it is. */
export const AUTO_WINDOW_MS = 250;

export class Outbox {
  /** Sockets with frames queued since the last flush, in the order they were first queued. */
  private dirty: Client[] = [];
  /** Reply frames queued since the last flush: while there are none, the flush need not look for them. */
  private replies = 0;
  /** Sockets a reply streams to (see the top of this file); removed once all is out or the socket closed. */
  private readonly streams = new Map<Client, Stream>();
  private scheduled = false;
  private frames = 0;
  /** performance.now() at the start of the last flush, and how many milliseconds it took. */
  private lastFlush = -Infinity;
  private lastFlushCost = 0;
  /** The fixed gap between flushes, or null for 'auto'. */
  private readonly coalesceMs: number | null;
  /** 'auto': whether the node is busy enough to space flushes, and what the current window saw. */
  private spacing = false;
  private windowStart = performance.now();
  private windowElu = performance.eventLoopUtilization();
  /** Milliseconds flushing took in the window, and the same counted once per frame each socket got. */
  private windowCost = 0;
  private windowAlone = 0;
  private readonly flushBound = () => this.flush();

  constructor(private readonly options: OutboxOptions) {
    const coalesce = options.coalesceMs ?? 'auto';
    this.coalesceMs = coalesce === 'auto' ? null : coalesce;
  }

  /** Frames queued since the last flush (a cheap way to tell whether a handler delivered anything). */
  get pending(): number {
    return this.frames;
  }

  /**
   * Queues one frame of a reply the client asked for (a history page, recovered messages): it
   * streams out as the client reads, and its bytes do not count towards --max-buffered.
   */
  reply(client: Client, frame: Buffer): void {
    replyFrames.add(frame);
    this.replies++;
    this.send(client, frame);
  }

  /** Queues one pre-framed message for one socket. */
  send(client: Client, frame: Buffer): void {
    const queue = queueOf(client);
    if (queue === null) {
      client.outbox = [frame];
      this.dirty.push(client);
      if (!this.scheduled) this.schedule();
    } else {
      queue.push(frame);
    }
    this.frames++;
  }

  /**
   * Bytes of replies `client` asked for that are not yet written to its socket: queued this turn
   * or held while a reply streams (the channel endpoint's request budget counts them).
   */
  unsentReplyBytes(client: Client): number {
    const queue = queueOf(client);
    return (queue === null ? 0 : replyBytesOf(queue)) + (this.streams.size === 0 ? 0 : (this.streams.get(client)?.replyBytes ?? 0));
  }

  /** True while frames of `client` wait for its socket to drain. */
  holding(client: Client): boolean {
    return this.streams.has(client);
  }

  /** Forgets `client`'s held frames: its socket closed (frames queued this turn are dropped at the flush). */
  closed(client: Client): void {
    this.streams.delete(client);
  }

  private schedule(): void {
    this.scheduled = true;
    const gap = this.coalesceMs ?? (this.busy() ? Math.min(AUTO_MAX_MS, AUTO_FACTOR * this.lastFlushCost) : 0);
    const wait = gap === 0 ? 0 : this.lastFlush + gap - performance.now();
    if (wait < 1) setImmediate(this.flushBound);
    else setTimeout(this.flushBound, wait);
  }

  /**
   * 'auto': whether flushes are spaced, judged once per {@link AUTO_WINDOW_MS} from the event
   * loop's utilisation in the window, with the flushes' time replaced by what writing every
   * message on its own would have taken.
   */
  private busy(): boolean {
    const now = performance.now();
    const elapsed = now - this.windowStart;
    if (elapsed < AUTO_WINDOW_MS) return this.spacing;
    const elu = performance.eventLoopUtilization(this.windowElu);
    const alone = Math.max(0, elu.utilization - this.windowCost / elapsed) + this.windowAlone / elapsed;
    this.spacing = this.spacing ? alone > AUTO_IDLE_BELOW : alone > AUTO_BUSY_ABOVE;
    this.windowStart = now;
    this.windowElu = performance.eventLoopUtilization();
    this.windowCost = 0;
    this.windowAlone = 0;
    return this.spacing;
  }

  /** Queues one pre-framed message for every socket in `clients`: the broadcast. */
  broadcast(clients: Iterable<Client>, frame: Buffer): void {
    for (const client of clients) this.send(client, frame);
  }

  /** Writes every queued socket's frames as one buffer. Runs once per turn; callable directly. */
  flush(): void {
    this.scheduled = false;
    const start = performance.now();
    this.lastFlush = start;
    const dirty = this.dirty;
    this.dirty = [];
    this.frames = 0;
    const replies = this.replies > 0;
    this.replies = 0;
    const streaming = this.streams.size > 0;
    let frames = 0;
    let bytes = 0;
    let sockets = 0;
    for (const client of dirty) {
      const queue = queueOf(client)!;
      client.outbox = null;
      if (!client.open) {
        if (streaming) this.streams.delete(client);
        continue;
      }
      const size = queue.length === 1 ? queue[0]!.length : bytesOf(queue);
      const replyBytes = replies ? replyBytesOf(queue) : 0;
      frames += queue.length;
      bytes += size;
      sockets++;
      const stream = streaming ? this.streams.get(client) : undefined;
      if (stream === undefined && (replyBytes === 0 || client.socket.writableLength + size <= STREAM_HIGH_WATER)) {
        // The broadcast path: everything this flush has for the socket in one write.
        client.socket.write(queue.length === 1 ? queue[0]! : Buffer.concat(queue, size));
        if (client.socket.writableLength > this.options.maxBuffered) this.options.onSlowConsumer(client);
        continue;
      }
      this.hold(client, stream, queue, size - replyBytes, replyBytes);
    }
    this.lastFlushCost = performance.now() - start;
    this.windowCost += this.lastFlushCost;
    if (sockets > 0) this.windowAlone += (this.lastFlushCost * frames) / sockets;
    this.options.onFlush?.(frames, sockets, bytes);
  }

  /** Streams `queue` behind whatever `client` already holds, as far as the socket takes it now. */
  private hold(client: Client, stream: Stream | undefined, queue: Buffer[], liveBytes: number, replyBytes: number): void {
    if (stream === undefined) this.streams.set(client, (stream = { held: queue, liveBytes, replyBytes, drainListening: false }));
    else {
      for (const frame of queue) stream.held.push(frame);
      stream.liveBytes += liveBytes;
      stream.replyBytes += replyBytes;
    }
    this.pump(client, stream);
    // While a reply streams, the socket holds at most about STREAM_HIGH_WATER: what piles up
    // unread is the held frames the client did not ask for.
    if (this.streams.get(client) === stream && stream.liveBytes > this.options.maxBuffered) this.options.onSlowConsumer(client);
  }

  /**
   * Writes held frames while the socket holds less than {@link STREAM_HIGH_WATER}, as large
   * writes; waits for 'drain' when more is left.
   */
  private pump(client: Client, stream: Stream): void {
    if (this.streams.get(client) !== stream) return;
    if (!client.open) {
      this.streams.delete(client);
      return;
    }
    const held = stream.held;
    const socket = client.socket;
    let i = 0;
    while (i < held.length && socket.writableLength < STREAM_HIGH_WATER) {
      let room = STREAM_HIGH_WATER - socket.writableLength;
      const start = i;
      let size = 0;
      // At least one frame per write, then as many as fit.
      do {
        const frame = held[i++]!;
        size += frame.length;
        room -= frame.length;
        if (replyFrames.has(frame)) stream.replyBytes -= frame.length;
        else stream.liveBytes -= frame.length;
      } while (i < held.length && room > 0);
      socket.write(i - start === 1 ? held[start]! : Buffer.concat(held.slice(start, i), size));
    }
    if (i === held.length) {
      this.streams.delete(client);
      return;
    }
    held.splice(0, i);
    if (!stream.drainListening) {
      stream.drainListening = true;
      socket.once('drain', () => {
        stream.drainListening = false;
        this.pump(client, stream);
      });
    }
  }
}
