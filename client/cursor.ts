/**
 * Where a subscription stands in its channel's stream, and the rule that makes the app see each
 * message once and in order: a message is delivered only when its offset is past the last one
 * delivered in the same epoch. Replays after a reconnect (recovered messages that overlap live
 * ones, or a server that resends) are dropped here.
 */
import type { StreamPosition } from '../src/protocol/frames.js';

/** What a `subscribed` frame meant for the app's view of the channel. */
export type SubscribeOutcome =
  /** A first subscription without `since`: the stream starts now. */
  | 'fresh'
  /** Resumed with `since`: every message missed meanwhile was delivered before the confirmation. */
  | 'recovered'
  /** Resumed with `since`, but the server could not cover the gap (history expired, epoch changed): reload state. */
  | 'unrecovered';

export class ChannelCursor {
  private epoch: string | undefined;
  private offset: number | undefined;

  constructor(since?: StreamPosition) {
    if (since) {
      this.epoch = since.epoch;
      this.offset = since.offset;
    }
  }

  /** The last delivered position, to resume from with `since`; undefined before the first confirmation. */
  get position(): StreamPosition | undefined {
    return this.epoch !== undefined && this.offset !== undefined ? { offset: this.offset, epoch: this.epoch } : undefined;
  }

  /** True when `epoch` is known to differ from the cursor's: the channel's offsets restarted. */
  isOtherEpoch(epoch: string | undefined): boolean {
    return epoch !== undefined && this.epoch !== undefined && epoch !== this.epoch;
  }

  /** Moves the cursor into a new epoch, just before `offset` (whatever came between is unknown). */
  restart(epoch: string, offset: number): void {
    this.epoch = epoch;
    this.offset = offset - 1;
  }

  /** A message frame arrived: true when the app should see it, false for one it already saw. */
  accept(offset: number): boolean {
    if (this.offset !== undefined && offset <= this.offset) return false;
    this.offset = offset;
    return true;
  }

  /**
   * The server confirmed a subscription that asked for `since` (or nothing). Moves the cursor to
   * the confirmed position and says whether the stream the app sees is continuous.
   */
  subscribed(frame: { readonly offset: number; readonly epoch: string; readonly recovered?: boolean }, since: StreamPosition | undefined): SubscribeOutcome {
    if (since === undefined) {
      this.epoch = frame.epoch;
      this.offset = Math.max(this.offset ?? frame.offset, frame.offset);
      return 'fresh';
    }
    // A server that does not say "recovered" did not recover: never assume a gap was covered.
    if (frame.recovered !== true || frame.epoch !== since.epoch) {
      this.epoch = frame.epoch;
      this.offset = frame.offset;
      return 'unrecovered';
    }
    this.epoch = frame.epoch;
    this.offset = Math.max(this.offset ?? frame.offset, frame.offset);
    return 'recovered';
  }
}
