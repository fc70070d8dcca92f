/**
 * One load-generator lane: opens its share of the clients, checks every benchmark message they
 * receive (sequence order, send time) and keeps counts and a latency histogram, which the main
 * thread collects. Nothing is allocated per frame.
 *
 * A lane is a worker thread of the bench's process, or, for runs past one process's file limit
 * (the connection-scale run), a child process of its own (forked with the advanced
 * serialization, so the histogram crosses as a typed array).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { HISTOGRAM_SIZE, LANE_DATA_ENV, latencyBucket, type WorkerData, type WorkerReport, type WorkerRequest } from './loadgen-shared.js';
import { SseClient, type SseClientOptions } from './sse-raw.js';
import { parseStamp, RawClient } from './ws-raw.js';

const data = (parentPort ? workerData : JSON.parse(process.env[LANE_DATA_ENV]!)) as WorkerData;
const port = parentPort ?? {
  postMessage: (msg: unknown) => process.send!(msg),
  on: (event: 'message', listener: (msg: WorkerRequest) => void) => process.on(event, listener),
};
// A child-process lane ends with the bench.
if (!parentPort) process.on('disconnect', () => process.exit(0));

const clients: (RawClient | SseClient)[] = [];
const lastSeq = new Int32Array(data.count);
const hist = new Uint32Array(HISTOGRAM_SIZE);
const stampOut = new Float64Array(1);
let windowStart = Infinity;
let windowEnd = -Infinity;
let received = 0;
let seen = 0;
let inWindow = 0;
let outOfOrder = 0;
let maxLatency = 0;
let ready = 0;
let failed = 0;
let lostAfterReady = 0;
/** Set when the main thread closes the clients: closes from then on are not losses. */
let closing = false;
const reasons = new Map<string, number>();

/** A delta `message` frame (bench/delta.ts). */
const DELTA_FIELD = Buffer.from('"delta":"');

function onText(index: number, buf: Buffer, start: number, end: number, now: number): void {
  const seq = parseStamp(buf, start, end, stampOut);
  if (seq < 0) {
    // A delta whose insert does not hold the whole stamp (fossil copied part of it from the
    // previous one): a delivery all the same, counted without a sequence check or a latency.
    if (data.delta) {
      const at = buf.indexOf(DELTA_FIELD, start);
      if (at >= 0 && at < end) countUnstamped(now);
    }
    return;
  }
  seen++;
  // Throughput counts every benchmark message read inside the window, warm-up ones included: a
  // server still working off the warm-up backlog is delivering, just late.
  if (now >= windowStart && now <= windowEnd) inWindow++;
  if (seq === 0) return; // warm-up: not checked, not in the latency figures
  if (seq <= lastSeq[index]!) outOfOrder++;
  else lastSeq[index] = seq;
  received++;
  const latency = now - stampOut[0]!;
  if (latency > maxLatency) maxLatency = latency;
  hist[latencyBucket(latency)]!++;
}

function countUnstamped(now: number): void {
  seen++;
  if (now >= windowStart && now <= windowEnd) inWindow++;
  // Counted as measured once the window opened (a warm-up backlog read after that is too, rarely).
  if (now >= windowStart) received++;
}

function open(index: number, done: () => void): void {
  let settled = false;
  const common: SseClientOptions = {
    host: data.host,
    port: data.ports[index % data.ports.length]!,
    path: data.path,
    localAddress: data.localAddresses[index % data.localAddresses.length],
    onText: (buf, start, end, now) => onText(index, buf, start, end, now),
    onReady: () => {
      ready++;
      settled = true;
      done();
    },
    onClose: (reason) => {
      if (!settled) {
        settled = true;
        failed++;
        reasons.set(reason, (reasons.get(reason) ?? 0) + 1);
        done();
      } else if (!closing) {
        lostAfterReady++;
        reasons.set(`after ready: ${reason}`, (reasons.get(`after ready: ${reason}`) ?? 0) + 1);
      }
    },
  };
  const client =
    data.protocol === 'sse' || data.protocol === 'sse-session'
      ? new SseClient({ ...common, subscribe: data.protocol === 'sse-session' ? data.channel : undefined })
      : new RawClient({ ...common, protocol: data.protocol, channel: data.channel, delta: data.delta });
  clients.push(client);
}

/** Opens every client, `concurrency` handshakes at a time. */
function openAll(): Promise<void> {
  return new Promise((resolve) => {
    let next = 0;
    let finished = 0;
    if (data.count === 0) resolve();
    const step = () => {
      finished++;
      if (finished === data.count) resolve();
      else if (next < data.count) open(next++, step);
    };
    while (next < Math.min(data.concurrency, data.count)) open(next++, step);
  });
}

function report(): WorkerReport {
  return {
    ready,
    failed,
    lostAfterReady,
    received,
    seen,
    inWindow,
    outOfOrder,
    maxLatency,
    hist,
    reasons: [...reasons.entries()],
  };
}

port.on('message', (msg: WorkerRequest) => {
  switch (msg.type) {
    case 'window':
      windowStart = msg.start;
      windowEnd = msg.end;
      return;
    case 'stats':
      port.postMessage({ type: 'stats', report: report() });
      return;
    case 'close':
      closing = true;
      for (const c of clients) c.close();
      port.postMessage({ type: 'closed' });
      return;
  }
});

openAll().then(() => port.postMessage({ type: 'connected', report: report() }));
