/**
 * The soak run's shape (its flags, bench/soak-command.ts) and what it measures (bench/soak.ts), as
 * soak.json holds them; bench/soak-checks.ts judges them and bench/soak-report.ts draws them.
 */
import type { SoakClientSample } from './soak-client.js';

/** The shape of a soak run; the defaults are the (the duration is given on the command line). */
export interface SoakShape {
  /** Seconds of the run (publishing, churn and restarts), before the final drain and checks. */
  readonly duration: number;
  readonly steady: number;
  readonly channels: number;
  /** Messages per second on each steady channel. */
  readonly rate: number;
  /** Churn cycles started per second, all client processes together. */
  readonly churn: number;
  readonly presence: number;
  readonly nodes: number;
  /** Seconds between node restarts (0: none); the first after one interval. */
  readonly restartEvery: number;
  /** How the node is stopped: SIGTERM drains it (the rolling restart), SIGKILL is a crash. */
  readonly restartSignal: 'SIGTERM' | 'SIGKILL';
  /** Seconds between report lines (and presence checks), and between memory samples. */
  readonly report: number;
  readonly sample: number;
  /** Seconds a closed connection's presence entry may stay before it counts as left behind. */
  readonly presenceGrace: number;
  /** Seconds to wait after the last publish for every steady subscriber to have every message, at most. */
  readonly drain: number;
  /** The heap check compares the live heap from this fraction of the run to the end. */
  readonly heapFrom: number;
  /** Largest growth allowed, % (10 by default). */
  readonly heapLimit: number;
  readonly clientProcesses: number;
  /** Extra `fanout serve` flags for every node. */
  readonly serveArgs: readonly string[];
}

export const SOAK_DEFAULTS: Omit<SoakShape, 'duration'> = {
  steady: 2000,
  channels: 4,
  rate: 20,
  churn: 200,
  presence: 5000,
  nodes: 2,
  restartEvery: 600,
  restartSignal: 'SIGTERM',
  report: 300,
  sample: 30,
  presenceGrace: 10,
  drain: 60,
  heapFrom: 1 / 6,
  heapLimit: 10,
  clientProcesses: 2,
  serveArgs: [],
};

/** One node's memory at one moment. */
export interface NodeSample {
  /** Seconds since the run started. */
  readonly at: number;
  /** node1…nodeN (a restarted node keeps its name). */
  readonly node: string;
  /** Its life: 0 for the first process, +1 per restart. */
  readonly life: number;
  readonly rss: number;
  readonly heap: number;
  /** Its open WebSocket connections (`fanout_connections`, all endpoints): the heap follows them. */
  readonly connections: number;
  /** heapUsed after a full GC. */
  readonly liveHeap: number;
}

/** The clients between two samples. */
export interface ClientSample {
  readonly at: number;
  /** Messages published on the steady channels so far, and × the subscribers of each. */
  readonly published: number;
  readonly expected: number;
  readonly delivered: number;
  readonly missed: number;
  readonly duplicates: number;
  readonly unrecovered: number;
  readonly reconnects: number;
  /** Of the messages that arrived since the previous sample, ms (0 when none). */
  readonly p50: number;
  readonly p99: number;
  readonly churn: SoakClientSample['churn'];
}

/** A presence check: entries in the store whose connection closed more than the grace before. */
export interface PresenceCheck {
  readonly at: number;
  readonly entries: number;
  readonly leftBehind: number;
  /** A few of them, `channel client`. */
  readonly examples: readonly string[];
}

export interface SoakRestart {
  readonly at: number;
  readonly node: string;
  /** ms from SIGTERM to the exit (the drain), and from the start to /readyz 200. */
  readonly drainMs: number;
  readonly startMs: number;
}

/** What a soak run measured; bench/soak-checks.ts turns it into verdicts. */
export interface SoakResult {
  readonly shape: SoakShape;
  /** Each node's live heap once it started, before any client connected (by node name). */
  readonly idle: Readonly<Record<string, number>>;
  readonly memory: readonly NodeSample[];
  readonly clients: readonly ClientSample[];
  /** One line's worth per report interval: p99 over the interval. */
  readonly intervals: readonly { readonly at: number; readonly p99: number; readonly delivered: number; readonly expected: number; readonly final?: boolean }[];
  readonly presence: readonly PresenceCheck[];
  readonly restarts: readonly SoakRestart[];
  /** After the drain: messages each steady subscriber still lacked, all together, and how many subscribers lacked any. */
  readonly finalMissing: number;
  readonly finalShortSubscribers: number;
  readonly publishFailures: number;
  /** Seconds the run took, drain included. */
  readonly elapsed: number;
}

/**
 * Messages the nodes keep per channel (unless --serve-args says otherwise): two minutes of the
 * steady rate, so that a drained node's subscribers recover on the other node even when their
 * reconnects queue up on a loaded machine (the default 100 is 5 s at 20 msg/s).
 */
export function soakHistorySize(shape: Pick<SoakShape, 'rate'>): number {
  return Math.max(100, shape.rate * 120);
}
