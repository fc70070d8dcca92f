/**
 * The Pusher lane in BENCHMARKS.md (bench/report.ts puts it in the Channels section): a sentence
 * on what it runs, and at each rate where both ran, its server CPU per delivery, p99 and delivered
 * share against the `/ws/v1` channel rows of the same run (issue 30: "Report its CPU per delivery
 * against /ws/v1 in the same run").
 */
import type { PointResult } from './measure.js';
import { PUSHER_PUBLISHER } from './pusher-system.js';

const ms = (n: number) => (Number.isFinite(n) ? (n >= 100 ? n.toFixed(0) : n.toFixed(1)) : '–');
const pct = (n: number) => `${(n * 100).toFixed(n >= 0.9995 && n < 1 ? 2 : 1)}%`;
const us = (n: number) => (Number.isFinite(n) ? n.toFixed(2) : '–');
const times = (a: number, b: number) => (Number.isFinite(a / b) ? `${(a / b).toFixed(2)}×` : '–');

/** What the Pusher rows are, for the paragraph above the Channels table. */
export const PUSHER_SENTENCE =
  'The Pusher rows run the same nodes with one Pusher app: clients speak the Pusher protocol 7 as pusher-js 8 does ' +
  '(`/app/{key}?protocol=7&client=js&version=…`, `pusher:subscribe` to the public channel after `pusher:connection_established`, ' +
  '`pusher:pong` to a `pusher:ping`) and read `{"event":…,"channel":…,"data":"<JSON text>"}`; ' +
  `the publisher is a back end triggering each message with the \`pusher\` library, ${PUSHER_PUBLISHER.replace(' (the `pusher` library)', '')} signed as Pusher signs it, through HAProxy on kept-alive connections.`;

/** The subsection comparing the Pusher rows with the `/ws/v1` rows of the same rates; empty when either is missing. */
export function pusherAgainstChannels(points: readonly PointResult[]): string[] {
  const rows: string[] = [];
  // Each Pusher point against the channel points of its round: the n-th at a rate against the n-th
  // (a run may repeat a rate, e.g. --rates 100,100, to alternate the systems).
  const nth = (system: string, via: string, rate: number) => points.filter((x) => x.system === system && x.publishVia === via && x.rate === rate);
  for (const p of points) {
    if (p.system !== 'pusher') continue;
    const round = nth('pusher', p.publishVia, p.rate).indexOf(p);
    const http = nth('channels', 'http', p.rate)[round];
    const socket = nth('channels', 'socket', p.rate)[round];
    if (!http && !socket) continue;
    rows.push(
      `| ${p.rate} | ${http ? `${times(p.cpuPerDelivery, http.cpuPerDelivery)} (${us(p.cpuPerDelivery)} vs ${us(http.cpuPerDelivery)} µs)` : '–'} | ` +
        `${socket ? `${times(p.cpuPerDelivery, socket.cpuPerDelivery)} (vs ${us(socket.cpuPerDelivery)} µs)` : '–'} | ` +
        `${ms(p.p99)} vs ${http ? ms(http.p99) : '–'} / ${socket ? ms(socket.p99) : '–'} | ${pct(p.ratio)} vs ${http ? pct(http.ratio) : '–'} / ${socket ? pct(socket.ratio) : '–'} |`,
    );
  }
  if (rows.length === 0) return [];
  return [
    '### Pusher against /ws/v1, same run',
    '',
    '| msg/s | server CPU per delivery, Pusher ÷ /ws/v1 with POST /api/publish | Pusher ÷ /ws/v1 with the publisher on a WebSocket | p99 ms, Pusher vs /ws/v1 (POST / WebSocket) | delivered, Pusher vs /ws/v1 (POST / WebSocket) |',
    '|---|---|---|---|---|',
    ...rows,
    '',
  ];
}
