/**
 * Rate-limited warnings for what nobody waits on: a message stored but not delivered live, a bus
 * or store error after the caller moved on. During an outage such events come once per message,
 * so each kind is logged at most once per window (TIMINGS.unnoticedLogMs), and the line says how
 * many of that kind went unlogged since the previous one. Counting them is the caller's job (a
 * metric counts every one; the log only says that it happens and why).
 */
import type { Logger } from '../logger.js';

interface KindState {
  /** When a line of this kind was last written (ms). */
  loggedAt: number;
  /** Events of this kind since that line that were not logged. */
  suppressed: number;
}

export class QuietLog {
  private readonly kinds = new Map<string, KindState>();

  /** `kinds` come from fixed sets in the code, never from a client: the map stays small. */
  constructor(
    private readonly logger: Logger,
    private readonly windowMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Logs `message` at warn unless a line of `kind` was written within the window; then it only counts it. */
  warn(kind: string, fields: Record<string, unknown>, message: string): void {
    const at = this.now();
    const state = this.kinds.get(kind);
    if (state && at - state.loggedAt < this.windowMs) {
      state.suppressed++;
      return;
    }
    const suppressed = state?.suppressed ?? 0;
    this.kinds.set(kind, { loggedAt: at, suppressed: 0 });
    this.logger.warn({ ...fields, kind, ...(suppressed > 0 ? { suppressed } : {}) }, `${message} (logged at most every ${Math.round(this.windowMs / 1000)} s per kind)`);
  }
}
