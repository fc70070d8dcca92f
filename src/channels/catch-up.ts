/**
 * Catching up after a bus outage: the node may have missed messages of a channel meanwhile. It
 * holds the channel's live frames, reads history after the last offset it delivered (with a
 * fence, as a joining subscription does), then delivers the missed messages (framed once each)
 * and the held frames. If history cannot fill the gap, the live subscribers are closed with 4510
 * so they resubscribe with `since` and learn it themselves.
 */
import { TIMINGS } from '../config/defaults.js';
import { CloseCode } from '../errors.js';
import { frameText } from '../node/outbox.js';
import type { ChannelRuntime } from './runtime.js';
import { inRead, type CatchUp, type HeldFrame, type LocalChannel } from './subscriptions.js';
import { encodeMessage } from '../protocol/message-frame.js';

/** What a catch-up hands back to the streams when it ends. */
export interface CatchUpHost {
  /** Subscriptions that were ready while the node caught up go live. */
  releaseDeferred(local: LocalChannel): void;
}

/**
 * Most live frames held for one channel while the node waits to catch up on it: past them (a
 * route that brings messages but stays `disconnected`) its subscribers are closed with 4510 and
 * recover by themselves, instead of the node holding frames without end.
 */
export const MAX_HELD_FRAMES = 10_000;

export class CatchUps {
  constructor(
    private readonly rt: ChannelRuntime,
    private readonly host: CatchUpHost,
  ) {}

  /**
   * The route went `disconnected`: from now on `local`'s live frames are held, and the position
   * delivered so far is the one the catch-up reads after. A route can bring messages again before
   * it reports `connected` (the NATS client resubscribes at once, the JetStream route reports
   * `connected` only once it ensured the stream): delivered then, they would move the position
   * past the messages missed meanwhile, and the catch-up would skip those.
   */
  hold(local: LocalChannel): void {
    if (local.catchUp || local.live.size === 0 || local.epoch === undefined) return;
    local.catchUp = { token: this.rt.token(), since: { offset: local.offset, epoch: local.epoch }, started: false, buffer: [], fenceAt: -1, result: undefined, timer: undefined };
  }

  /** A frame came for `local` while it catches up (or waits to): held, within {@link MAX_HELD_FRAMES}. */
  held(local: LocalChannel, frame: HeldFrame): void {
    const catchUp = local.catchUp!;
    catchUp.buffer.push(frame);
    if (catchUp.buffer.length > MAX_HELD_FRAMES) this.abandon(local, catchUp);
  }

  /** The route is connected again: reads what `local` missed since its hold (or since now, when it holds nothing yet). */
  async start(local: LocalChannel): Promise<void> {
    this.hold(local);
    const catchUp = local.catchUp;
    if (!catchUp || catchUp.started) return;
    catchUp.started = true;
    const { since } = catchUp;
    const { service } = this.rt;
    try {
      await service.link.subscribe(local.topic);
      catchUp.result = await service.read(local.name, { since, fence: service.fence(local.name, catchUp.token) });
    } catch {
      return this.abandon(local, catchUp);
    }
    if (local.catchUp !== catchUp) return;
    if (catchUp.fenceAt >= 0) return this.caughtUp(local);
    catchUp.timer = setTimeout(() => this.abandon(local, catchUp), TIMINGS.joinTimeoutMs);
    catchUp.timer.unref();
  }

  /** A fence arrived on `local`'s topic: true when it was this catch-up's. */
  fenced(local: LocalChannel, token: string): boolean {
    const catchUp = local.catchUp;
    if (!catchUp || catchUp.token !== token || catchUp.fenceAt >= 0) return false;
    catchUp.fenceAt = catchUp.buffer.length;
    if (catchUp.result) this.caughtUp(local);
    return true;
  }

  private caughtUp(local: LocalChannel): void {
    const catchUp = local.catchUp!;
    const result = catchUp.result!;
    const { outbox } = this.rt;
    clearTimeout(catchUp.timer);
    local.catchUp = undefined;
    // The missed and held messages go out whole, outside the live broadcast: the next is whole too.
    local.delta?.gap();
    if (result.covered) {
      for (const m of result.messages) outbox.broadcast(local.live, frameText(encodeMessage(local.name, m.offset, result.epoch, m.data)));
      // The held frames after the fence, but for the messages the read already returned (store.ts, `fence`).
      for (let i = catchUp.fenceAt; i < catchUp.buffer.length; i++) if (!inRead(catchUp.buffer[i]!, result)) outbox.broadcast(local.live, catchUp.buffer[i]!.frame);
      if (catchUp.fenceAt === catchUp.buffer.length) local.setPosition(result.offset, result.epoch);
    } else {
      this.rt.logger.warn({ channel: local.name, clients: local.live.size }, 'messages missed during a bus outage are no longer in history; closing subscribers with 4510');
      local.setPosition(result.offset, result.epoch);
      resubscribeAll(local);
    }
    this.host.releaseDeferred(local);
  }

  private abandon(local: LocalChannel, catchUp: CatchUp): void {
    if (local.catchUp !== catchUp) return;
    clearTimeout(catchUp.timer);
    local.catchUp = undefined;
    local.stale = true;
    local.delta?.gap();
    resubscribeAll(local);
    this.host.releaseDeferred(local);
  }
}

function resubscribeAll(local: LocalChannel): void {
  for (const client of local.live) client.ws.close(CloseCode.RESUBSCRIBE, 'missed messages: resubscribe with since');
}
