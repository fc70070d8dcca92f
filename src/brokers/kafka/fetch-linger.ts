/**
 * The fetch linger of a Kafka session's consumer: after a fetch that brought records, the next
 * fetch waits {@link FETCH_LINGER_MS} before it goes out, so under a steady flow one fetch carries
 * the records of that whole wait instead of one each; with nothing to read, the consumer goes
 * back to the broker at once and waits there (a long poll of FETCH_MAX_WAIT_MS), so the first
 * record after a quiet spell is not delayed.
 *
 * Why: each fetch is a request the broker (a JVM) and the node both pay for, a write and a read
 * on each side, whatever it carries. With every node reading the whole topic, a consumer fetching
 * as soon as the last answer came makes one request per record per node: at 100 records/s on two
 * nodes, 200 fetches/s, which cost the broker more CPU than the records themselves (measured,
 * docs/operations.md#sizing). The linger bounds fetches to 1000 / FETCH_LINGER_MS per second per
 * consumer, for at most that much added latency per record. Nothing is dropped or reordered: the
 * stream is paused between fetches, never while records are being handed on.
 */
import type { MessagesStream } from '@platformatic/kafka';

/** How long the next fetch waits after one that brought records. */
export const FETCH_LINGER_MS = 20;

/** A lingered fetch loop's handle: {@link FetchLinger.hurry} fetches now, {@link FetchLinger.stop} ends the linger for good (the session closes). */
export interface FetchLinger {
  hurry(): void;
  stop(): void;
}

/**
 * Lingers `stream`'s fetch loop (see above); `stream` must be flowing (a 'data' listener). No
 * linger while `urgent()` holds: the owner waits for the records (a read catching up with the
 * log's end, a writer waiting to read its own record back), and it calls `hurry()` when it starts
 * to wait, which ends a linger under way.
 */
export function lingerFetches(stream: MessagesStream<Buffer, Buffer, Buffer, Buffer>, urgent: () => boolean = () => false, lingerMs = FETCH_LINGER_MS): FetchLinger {
  let records = 0;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const resume = (): void => {
    clearTimeout(timer);
    timer = undefined;
    if (!stopped && !stream.destroyed) stream.resume();
  };
  stream.on('data', () => void records++);
  // 'fetch' comes as an answer arrives, before its records are pushed (synchronously, to the
  // flowing stream's 'data' listeners); the stream schedules its next fetch with
  // process.nextTick after pushing them. A tick queued here runs before that one: pausing then
  // stops that fetch, and resuming later starts the next.
  stream.on('fetch', () => {
    records = 0;
    process.nextTick(() => {
      if (records === 0 || timer !== undefined || stopped || stream.destroyed || urgent()) return;
      stream.pause();
      timer = setTimeout(resume, lingerMs);
    });
  });
  return {
    hurry: () => {
      if (timer !== undefined) resume();
    },
    stop: () => {
      stopped = true;
      clearTimeout(timer);
      timer = undefined;
    },
  };
}
