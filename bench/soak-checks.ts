/**
 * The soak's verdicts, from what bench/soak.ts measured (pure: no I/O). A run fails when:
 * - the live heap (after a full GC) of a node that ran the whole time grew more than `heapLimit` %
 *   from `heapFrom` of the run (the 20th minute of two hours) to the end;
 * - a steady subscriber missed a message (a gap the SDK could not recover, or one still missing
 *   after the drain);
 * - a presence entry stayed in the store more than the grace after its connection closed.
 */
import type { NodeSample, SoakResult } from './soak-shape.js';

export interface SoakCheck {
  readonly name: 'heap' | 'delivery' | 'presence';
  readonly ok: boolean;
  /** One line saying what was measured, and why it failed when it did. */
  readonly line: string;
}

function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

const mb = (b: number) => `${(b / 1048576).toFixed(1)} MB`;

/** Connections within this fraction of the end's count are the same load. */
export const EQUAL_LOAD = 0.02;

/**
 * Heap growth of each node that was never restarted, at equal load: the median live heap over a
 * window from `heapFrom` of the run against the median over the same length of window at its end
 * (1/12 of the run, at least two samples), so one sample's noise does not decide. Connections move
 * between nodes (a restart sends the restarted node's long-lived ones to the others, and little
 * sends them back), and each holds heap. So the baseline is the first window, starting between
 * `heapFrom` and the middle of the run, whose connections are those of the end (within
 * {@link EQUAL_LOAD}): the same load, compared as it is. When the node never had the end's load
 * that early, the end is compared with what the `heapFrom` window's heap per connection above the
 * node's idle heap predicts for the end's connections, `idle + (base − idle) × connsEnd /
 * connsBase`; that prediction is low when the connections that moved hold more than the average
 * one (a presence member against a churning connection). The first restart moves the most, so
 * the baseline starts after it.
 */
export function heapChecks(r: SoakResult): SoakCheck[] {
  const { duration, heapFrom, heapLimit, sample } = r.shape;
  const window = Math.max(2 * sample, duration / 12);
  const first = r.restarts[0];
  const settled = first ? first.at + (first.drainMs + first.startMs) / 1000 + sample : 0;
  const from = Math.max(duration * heapFrom, settled);
  const names = [...new Set(r.memory.map((m) => m.node))];
  const whole = names.filter((n) => r.memory.every((m) => m.node !== n || m.life === 0));
  if (whole.length === 0) return [{ name: 'heap', ok: false, line: 'heap: no node ran the whole run, nothing to compare' }];
  return whole.map((node) => {
    const mine = r.memory.filter((m): m is NodeSample => m.node === node && Number.isFinite(m.liveHeap));
    const windowFrom = (start: number) => mine.filter((m) => m.at >= start && m.at <= start + window);
    const end = mine.filter((m) => m.at >= duration - window);
    const ce = median(end.map((m) => m.connections));
    const sameLoad = mine
      .filter((m) => m.at >= from && m.at <= duration / 2)
      .map((m) => windowFrom(m.at))
      .find((w) => Math.abs(median(w.map((m) => m.connections)) - ce) <= ce * EQUAL_LOAD);
    const base = sameLoad ?? windowFrom(from);
    if (base.length === 0 || end.length === 0) return { name: 'heap', ok: false, line: `heap of ${node}: no samples from ${Math.round(from)} s or at the end to compare` };
    const [b, e] = [median(base.map((m) => m.liveHeap)), median(end.map((m) => m.liveHeap))];
    const cb = median(base.map((m) => m.connections));
    const idle = r.idle[node] ?? 0;
    const expected = sameLoad || !(cb > 0 && Number.isFinite(ce)) ? b : idle + ((b - idle) * ce) / cb;
    const growth = (e / expected - 1) * 100;
    const raw = (e / b - 1) * 100;
    const ok = growth <= heapLimit;
    const sign = (n: number) => `${n >= 0 ? '+' : ''}${n.toFixed(1)} %`;
    return {
      name: 'heap',
      ok,
      line:
        `heap of ${node} (live, after a full GC): ${mb(b)} from ${Math.round(sameLoad ? sameLoad[0]!.at : from)} s with ${Math.round(cb)} connections, ${mb(e)} at the end with ${Math.round(ce)} (${sign(raw)}); ` +
        (sameLoad ? 'the same load: ' : `${mb(expected)} expected at that load (idle ${mb(idle)}): `) +
        `${sign(growth)}${ok ? ` (limit ${heapLimit} %)` : `, more than the ${heapLimit} % allowed`}`,
    };
  });
}

export function deliveryCheck(r: SoakResult): SoakCheck {
  const last = r.clients.at(-1);
  const missed = (last?.missed ?? 0) + r.finalMissing;
  const detail = `${last?.delivered ?? 0} of ${last?.expected ?? 0} delivered to ${r.shape.steady} steady subscribers, ${last?.duplicates ?? 0} duplicates, ${last?.unrecovered ?? 0} unrecovered resubscriptions, ${last?.reconnects ?? 0} reconnects`;
  if (missed === 0) return { name: 'delivery', ok: true, line: `delivery: ${detail}; no message missed` };
  return {
    name: 'delivery',
    ok: false,
    line: `delivery: steady subscribers missed ${missed} messages (${last?.missed ?? 0} skipped, ${r.finalMissing} still missing after the drain, ${r.finalShortSubscribers} subscribers short); ${detail}`,
  };
}

export function presenceCheck(r: SoakResult): SoakCheck {
  const bad = r.presence.filter((p) => p.leftBehind > 0);
  const last = r.presence.at(-1);
  if (bad.length === 0) return { name: 'presence', ok: true, line: `presence: ${r.presence.length} checks, none left behind (${last?.entries ?? 0} entries at the end, all of open connections)` };
  const worst = bad.reduce((a, b) => (b.leftBehind > a.leftBehind ? b : a));
  return {
    name: 'presence',
    ok: false,
    line: `presence: members left behind after their connection closed in ${bad.length} of ${r.presence.length} checks, ${worst.leftBehind} at ${Math.round(worst.at)} s (e.g. ${worst.examples.join(', ')}); ${last?.leftBehind ?? 0} at the end`,
  };
}

/** Every verdict of a run: the heap of each node that ran throughout, delivery, presence. */
export function soakChecks(r: SoakResult): SoakCheck[] {
  return [...heapChecks(r), deliveryCheck(r), presenceCheck(r)];
}
