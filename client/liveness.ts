/**
 * How the SDK tells a dead link from a quiet one (docs/client.md, "A silent link"). A node that
 * crashed while the link was cut, or a link that black-holes packets, leaves the socket looking
 * open: no close ever arrives, and a subscriber that only listens sends nothing that could fail.
 * Browsers cannot see WebSocket pings, so the node announces `ping` (seconds) in `connected` and
 * writes a `ping` frame to a connection nothing else was written to for a whole interval; some
 * frame then arrives at least every 1.5 × `ping` seconds (docs/protocol.md). One timer per
 * connection watches for longer silence; the SDK then drops the socket itself and reconnects as
 * after any drop (backoff, resubscribe with `since`). Browser-safe: no Node API.
 */

/**
 * ms of silence after which the SDK gives a connection up: the node's worst gap (1.5 × `ping`)
 * plus a grace for delay on the way, max(5 s, `ping` / 2), as Socket.IO's pingTimeout and
 * Centrifugo's maxServerPingDelay allow beside their intervals.
 */
export function silenceLimitMs(pingSeconds: number): number {
  const ping = pingSeconds * 1000;
  return 1.5 * ping + Math.max(5000, ping / 2);
}

/**
 * One connection's watch: {@link heard} on every frame (one clock read, no timer work), one
 * timer that re-arms itself for what is left of the limit and calls `onSilence` once the limit
 * passed without a frame.
 */
export class SilenceWatch {
  private last = Date.now();
  private timer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    /** The limit, in ms ({@link silenceLimitMs}). */
    readonly limitMs: number,
    private readonly onSilence: () => void,
  ) {
    this.arm(limitMs);
  }

  /** A frame arrived. */
  heard(): void {
    this.last = Date.now();
  }

  /** The connection ended: no call any more. */
  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private arm(ms: number): void {
    this.timer = setTimeout(() => {
      const quiet = Date.now() - this.last;
      if (quiet >= this.limitMs) {
        this.timer = undefined;
        this.onSilence();
      } else this.arm(this.limitMs - quiet);
    }, ms);
  }
}
