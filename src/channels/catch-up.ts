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
import { inRead, type CatchUp, type LocalChannel } from './subscriptions.js';
import { encodeMessage } from '../protocol/message-frame.js';

/** What a catch-up hands back to the streams when it ends. */
export interface CatchUpHost {
  /** Subscriptions that were ready while the node caught up go live. */
  releaseDeferred(local: LocalChannel): void;
}

export class CatchUps {
  constructor(
    private readonly rt: ChannelRuntime,
    private readonly host: CatchUpHost,
  ) {}

  async start(local: LocalChannel): Promise<void> {
    const catchUp: CatchUp = { token: this.rt.token(), buffer: [], fenceAt: -1, result: undefined, timer: undefined };
    // From here on live frames are held; the position is taken now, before frames can move it.
    local.catchUp = catchUp;
    const since = { offset: local.offset, epoch: local.epoch! };
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
