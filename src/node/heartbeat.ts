/**
 * Heartbeats that cost little on a node with many idle sockets: a wheel of slots.
 *
 * Why: pinging every socket of a node at once, one write each, puts tens of thousands of writes
 * (and then as many pongs) through HAProxy and the kernel in one event-loop turn, which shows as
 * latency for whatever else the node does in that turn and as CPU on a node that is otherwise
 * idle. So:
 * - **Spread.** Each socket has a slot; the interval (--heartbeat) is cut into {@link slicesFor}
 *   slices, about {@link HEARTBEAT_SLICE_MS} apart, and each tick visits one slot. No turn visits
 *   more than about sockets / slices of them, and each socket is still visited once per interval.
 * - **Framed once.** The ping is one pre-built frame ({@link PING_FRAME}, from ws's own encoder),
 *   the same bytes written to every socket: no framing or allocation per ping.
 * - **Only the silent are pinged.** A socket that sent anything (a message, a pong) since its
 *   previous visit proved alive and is not pinged this round.
 *
 * The rule, per visit of a socket: heard from since the previous visit → nothing to do; silent
 * and not pinged → ping; pinged at the previous visit and still silent → terminate. A ping so has
 * one whole interval to be answered, a socket that talks is never pinged, an idle one that
 * answers is pinged every other interval, and a silent peer is terminated between two and three
 * intervals after the last frame it sent (50–75 s with the default 25 s).
 *
 * The other direction rides on the same ticks: {@link HeartbeatActions.sample} sees each socket
 * twice per interval, where the node writes the channel protocol's `ping` frame to sockets
 * nothing was written to for an interval (node/sockets.ts), for clients that cannot see pings.
 */
import { Sender } from '../transport/ws-internals.js';

/** Aimed-at time between two ticks of the wheel: often enough that a slot stays small, rarely enough that an idle node hardly wakes. */
export const HEARTBEAT_SLICE_MS = 100;
/** At most this many slots, so a long --heartbeat does not make a wheel of thousands of slots (ticks then come further apart). */
export const HEARTBEAT_MAX_SLICES = 600;
/** setInterval's largest delay. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** The complete unmasked ping frame (server → client, empty payload), framed once by ws's encoder. */
export const PING_FRAME: Buffer = (() => {
  const parts = Sender.frame(Buffer.alloc(0), { fin: true, rsv1: false, opcode: 0x9, mask: false, readOnly: false });
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
})();

/** A socket's state in the wheel: heard from since its last visit, silent, or pinged at its last visit and silent since. */
const HEARD = 0;
const SILENT = 1;
const PINGED = 2;
/** The state is the low two bits of a socket's entry in the wheel; the rest is its slot. */
const STATE_BITS = 2;
const STATE_MASK = 3;

/** What a visit does to a socket: write {@link PING_FRAME} to it, or cut it. */
export interface HeartbeatActions<T> {
  ping(item: T): void;
  terminate(item: T): void;
  /**
   * Called twice per interval for every socket: at its visit (after the rule above) and half an
   * interval later (its slot's opposite). Where the node writes the channel protocol's own `ping`
   * frame to a socket nothing was written to for a whole interval (node/sockets.ts): the same
   * wheel serves both directions, with no timer per socket.
   */
  sample?(item: T): void;
}

/** How many slices an interval of `seconds` is cut into, and the tick between them in ms. */
export function slicesFor(seconds: number): { slices: number; tickMs: number } {
  const intervalMs = seconds * 1000;
  const slices = Math.min(HEARTBEAT_MAX_SLICES, Math.max(1, Math.round(intervalMs / HEARTBEAT_SLICE_MS)));
  return { slices, tickMs: Math.max(1, Math.min(MAX_TIMER_MS, intervalMs / slices)) };
}

/**
 * The sockets of a node in slots; also the node's registry of them. What the wheel knows of a
 * socket is its own: one entry in {@link beats} (slot and state packed in one small integer, so
 * no object per socket) and one in its slot's set. {@link tick} visits the next slot; the caller
 * drives it (a timer every `tickMs` in the node, by hand in tests).
 */
export class HeartbeatWheel<T extends object> implements Iterable<T> {
  private readonly slots: Set<T>[];
  /** Each socket's `slot << STATE_BITS | state`. */
  private readonly beats = new Map<T, number>();
  /** Slot of the next socket added: round robin, so slots stay even as sockets come. */
  private nextSlot = 0;
  /** Slot the next tick visits. */
  private cursor = 0;

  constructor(
    readonly slices: number,
    private readonly actions: HeartbeatActions<T>,
  ) {
    if (!(Number.isInteger(slices) && slices >= 1)) throw new RangeError(`slices must be a whole number ≥ 1, got ${slices}`);
    this.slots = Array.from({ length: slices }, () => new Set<T>());
  }

  get size(): number {
    return this.beats.size;
  }

  /** Adds a socket; it counts as just heard from (its first ping comes one to two intervals later). */
  add(item: T): void {
    if (this.beats.has(item)) return;
    const slot = this.nextSlot;
    this.nextSlot = (this.nextSlot + 1) % this.slices;
    this.beats.set(item, (slot << STATE_BITS) | HEARD);
    this.slots[slot]!.add(item);
  }

  /** Removes a socket; false if it was not in the wheel. */
  delete(item: T): boolean {
    const beat = this.beats.get(item);
    if (beat === undefined) return false;
    this.beats.delete(item);
    this.slots[beat >> STATE_BITS]!.delete(item);
    return true;
  }

  /** The peer sent something (a message, a pong): it is alive until the next visit. */
  heard(item: T): void {
    const beat = this.beats.get(item);
    if (beat !== undefined && (beat & STATE_MASK) !== HEARD) this.beats.set(item, beat & ~STATE_MASK);
  }

  /** The slot `item` is in, or undefined when it is not in the wheel. */
  slotOf(item: T): number | undefined {
    const beat = this.beats.get(item);
    return beat === undefined ? undefined : beat >> STATE_BITS;
  }

  /** Visits one slot (see the rule at the top of this file). */
  tick(): void {
    const at = this.cursor;
    const slot = this.slots[at]!;
    const base = at << STATE_BITS;
    this.cursor = (at + 1) % this.slices;
    for (const item of slot) {
      const state = this.beats.get(item)! & STATE_MASK;
      if (state === HEARD) {
        this.beats.set(item, base | SILENT);
      } else if (state === SILENT) {
        this.beats.set(item, base | PINGED);
        this.actions.ping(item);
      } else {
        this.actions.terminate(item);
      }
    }
    const sample = this.actions.sample;
    if (sample === undefined) return;
    for (const item of slot) sample(item);
    // The opposite slot (the same one in a wheel of one slot: two samples at once).
    for (const item of this.slots[(at + Math.floor(this.slices / 2)) % this.slices]!) sample(item);
  }

  *[Symbol.iterator](): Iterator<T> {
    for (const slot of this.slots) yield* slot;
  }
}
