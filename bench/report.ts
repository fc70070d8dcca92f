/**
 * The benchmark's outputs: a Markdown report (BENCHMARKS.md) and an SVG plot of deliveries/s and
 * p99 latency against offered load, written as plain text.
 */
import { BROKER_LABELS, HISTORY_LOG_LABELS, type BenchBroker, type HistoryLog } from './brokers.js';
import type { PointResult, ScaleResult } from './measure.js';
import { linePanels } from './plot.js';
import { pusherAgainstChannels, PUSHER_SENTENCE } from './pusher-report.js';
import { PUSHER_PUBLISHER } from './pusher-system.js';
import { SYSTEM_LABELS, type SystemName } from './systems.js';

export interface BenchRun {
  readonly startedAt: string;
  readonly command: string;
  readonly machine: string;
  readonly versions: string;
  readonly clients: number;
  readonly duration: number;
  /** Unmeasured seconds before each started broker's first point (`--broker-warmup`); missing in older reports. */
  readonly brokerWarmup?: number;
  readonly bus: string;
  readonly points: readonly PointResult[];
  /** Fanout over each broker (`--brokers`), one point each. */
  readonly brokers: readonly BrokerPoint[];
  /** The channel path over each log that holds history (`--history-logs`). Missing in reports older than it. */
  readonly histories?: readonly HistoryPoint[];
  readonly scale: readonly ScaleResult[];
  /** Systems that could not be run, with the reason. */
  readonly skipped: readonly { readonly system: string; readonly reason: string }[];
}

export interface BrokerPoint {
  readonly broker: BenchBroker;
  readonly point: PointResult;
  /** Whether the broker's processes were known and their CPU is in the server CPU. */
  readonly brokerCpuCounted: boolean;
}

export interface HistoryPoint {
  readonly log: HistoryLog;
  readonly point: PointResult;
  readonly brokerCpuCounted: boolean;
}

const COLORS: Record<string, string> = {
  fanout: '#d62728',
  'fanout-turn': '#e377c2',
  socketio: '#1f77b4',
  seed: '#7f7f7f',
  seed2: '#bcbd22',
  'ws-bare': '#2ca02c',
  'channels/socket': '#ff7f0e',
  'channels/http': '#9467bd',
  pusher: '#8c564b',
  sse: '#e377c2',
  'sse-session': '#17becf',
};

/** The series a point belongs to (channel points are split by how they were published). */
export function seriesOf(p: PointResult): string {
  return p.system === 'channels' ? `channels/${p.publishVia}` : p.system;
}

function seriesLabel(series: string): string {
  if (series.startsWith('channels/')) return `${SYSTEM_LABELS.channels}, publisher via ${series.endsWith('http') ? 'POST /api/publish' : 'WebSocket'}`;
  if (series === 'pusher') return `${SYSTEM_LABELS.pusher}, publisher via ${PUSHER_PUBLISHER}`;
  return SYSTEM_LABELS[series as SystemName] ?? series;
}

const k = (n: number) => (Number.isFinite(n) ? (n >= 10_000 ? `${(n / 1000).toFixed(1)}k` : n.toFixed(0)) : '–');
const ms = (n: number) => (Number.isFinite(n) ? (n >= 100 ? n.toFixed(0) : n.toFixed(1)) : '–');
const pct = (n: number) => `${(n * 100).toFixed(n >= 0.9995 && n < 1 ? 2 : 1)}%`;
const kb = (bytes: number) => (Number.isFinite(bytes) ? (bytes / 1024).toFixed(1) : '–');

function pointRow(p: PointResult, label = seriesLabel(seriesOf(p))): string {
  const per = (seconds: number | null) => (seconds === null || p.delivered === 0 ? '–' : ((seconds / p.delivered) * 1e6).toFixed(2));
  const cpu = p.delivered === 0 ? '–' : `${p.cpuPerDelivery.toFixed(2)} (${per(p.cpu.nodes)} + ${per(p.cpu.haproxy)} + ${per(p.cpu.broker)})`;
  // Concurrent HTTP requests may overtake each other: their order is not the publisher's.
  const order = p.publishVia === 'http' ? 'after overtaking (concurrent POSTs)' : 'out of order';
  const problems = [p.failed ? `${p.failed} failed to connect` : '', p.lostAfterReady ? `${p.lostAfterReady} dropped` : '', p.outOfOrder ? `${p.outOfOrder} ${order}` : '']
    .filter(Boolean)
    .join(', ');
  return `| ${label} | ${p.rate} | ${k(p.offered)} | **${k(p.deliveriesPerSec)}** | ${pct(p.ratio)} | ${ms(p.p50)} | **${ms(p.p99)}** | ${ms(p.max)} | ${cpu} | ${(p.nodeRss / 1048576).toFixed(0)} | ${problems || '–'} |`;
}

/** Fanout against Socket.IO at each rate both ran. */
function ratios(points: readonly PointResult[]): string[] {
  const rows: string[] = [];
  for (const f of points.filter((p) => p.system === 'fanout')) {
    const s = points.find((p) => p.system === 'socketio' && p.rate === f.rate);
    if (!s) continue;
    rows.push(
      `| ${f.rate} | ${k(f.offered)} | ${(f.deliveriesPerSec / s.deliveriesPerSec).toFixed(2)}× | ${(f.cpuPerDelivery / s.cpuPerDelivery).toFixed(2)} | ${ms(f.p99)} vs ${ms(s.p99)} |`,
    );
  }
  return rows;
}

/** The SSE transport's goal (issue 29): server CPU per delivery at most this many times the WebSocket channel row's. */
export const SSE_CPU_GOAL = 1.5;

/** Channels over SSE against the same channel over WebSockets (publisher over a WebSocket), at each rate both ran. */
function sseRatios(points: readonly PointResult[]): string[] {
  const rows: string[] = [];
  for (const s of points.filter((p) => p.system === 'sse' || p.system === 'sse-session')) {
    const w = points.find((p) => p.system === 'channels' && p.publishVia === 'socket' && p.rate === s.rate);
    if (!w) continue;
    const c = s.cpuPerDelivery / w.cpuPerDelivery;
    rows.push(
      `| ${s.system === 'sse' ? 'plain EventSource' : 'SDK sessions'} | ${s.rate} | ${k(s.offered)} | ${c.toFixed(2)}× (${s.cpuPerDelivery.toFixed(2)} vs ${w.cpuPerDelivery.toFixed(2)} µs) ${c <= SSE_CPU_GOAL ? '✅' : '❌'} | ${ms(s.p99)} vs ${ms(w.p99)} | ${pct(s.ratio)} vs ${pct(w.ratio)} |`,
    );
  }
  return rows;
}

/** The issue's targets at 2000 clients × 100 messages/s, judged on this run. */
function targets(run: BenchRun): string[] {
  const f = run.points.find((p) => p.system === 'fanout' && p.rate === 100);
  const s = run.points.find((p) => p.system === 'socketio' && p.rate === 100);
  if (!f) return [];
  const mark = (ok: boolean) => (ok ? '✅' : '❌');
  const rows = [
    `| everything delivered | 100% | ${pct(f.ratio)} (${f.delivered} of ${f.expected}) | ${mark(f.delivered === f.expected)} |`,
    `| p99 latency | ≤ 250 ms | ${ms(f.p99)} ms | ${mark(f.p99 <= 250)} |`,
  ];
  if (s) {
    const d = f.deliveriesPerSec / s.deliveriesPerSec;
    const c = f.cpuPerDelivery / s.cpuPerDelivery;
    rows.push(
      `| deliveries/s against Socket.IO | ≥ 1.5× | ${d.toFixed(2)}× (${k(f.deliveriesPerSec)} vs ${k(s.deliveriesPerSec)}) | ${mark(d >= 1.5)} |`,
      `| server CPU per delivery against Socket.IO | ≤ 0.5× | ${c.toFixed(2)}× (${f.cpuPerDelivery.toFixed(2)} vs ${s.cpuPerDelivery.toFixed(2)} µs) | ${mark(c <= 0.5)} |`,
      `| (the nodes alone, without HAProxy and Redis) | | ${(f.cpu.nodes / f.delivered / (s.cpu.nodes / s.delivered)).toFixed(2)}× | |`,
    );
    const best = (system: string) => Math.max(...run.points.filter((p) => p.system === system).map((p) => p.deliveriesPerSec));
    const [fBest, sBest] = [best('fanout'), best('socketio')];
    if (run.points.some((p) => p.system === 'fanout' && p.rate > 100)) {
      rows.push(`| highest deliveries/s in the sweep against Socket.IO's | ≥ 1.5× | ${(fBest / sBest).toFixed(2)}× (${k(fBest)} vs ${k(sBest)}) | ${mark(fBest / sBest >= 1.5)} |`);
    }
  }
  const notes: string[] = [];
  if (s && f.deliveriesPerSec >= 0.95 * f.offered) {
    notes.push(
      `Fanout delivered what was offered (${k(f.deliveriesPerSec)} of ${k(f.offered)}/s), so at this rate its lead in deliveries/s is capped by offered ÷ Socket.IO's throughput; the higher rates show the ceilings.`,
    );
  }
  if (s) {
    notes.push(
      'HAProxy\'s CPU follows the number of writes it forwards: the fewer frames per write, the more it costs per delivery. Fanout joins a socket\'s frames from several messages into one write under load (`--coalesce-ms auto`); a server that falls behind does the same by accident, at the price of its latency.',
    );
  }
  return [`## Targets at ${f.clients} clients × 100 messages/s (${k(f.offered)} deliveries/s offered)`, '', '| target | wanted | this run | |', '|---|---|---|---|', ...rows, '', ...notes.flatMap((n) => [n, '']), ''];
}

/** Short names for the scale table, whose node counts are its own. */
const SCALE_NAMES: Partial<Record<SystemName, string>> = {
  fanout: 'Fanout (Redis)',
  socketio: 'Socket.IO + redis-adapter',
  'ws-bare': 'bare ws + Redis pub/sub',
  seed: 'express-ws seed',
};

/** The connection-scale run: its table, and Fanout against the bare ws broadcaster. */
function scaleSection(scale: readonly ScaleResult[]): string[] {
  const lines = ['## Connection scale (many connections, few messages, heartbeats on)', ''];
  const first = scale[0];
  if (!first) return [...lines, 'Not run (`--scale 0`).', ''];
  lines.push(
    `Each system on ${first.nodes} nodes of its own behind ${first.frontends} HAProxy processes (Fanout's generated config, each with its own \`source\` address, so none runs out of ports), ` +
      `${first.requested} connections from ${first.clientProcesses} client processes over several local addresses. ` +
      `Memory per idle connection is the nodes' RSS growth from before the first client to every client connected and idle for 3 s, each read after a full garbage collection in every node (\`--expose-gc\`, the same for every system), so the handshakes' garbage and a fresh process's start-up garbage do not blur it. RSS also moves between runs with how much heap V8 keeps committed after collecting; the live heap (\`process.memoryUsage().heapUsed\` after the same GC) is the steadier figure. Then one message is broadcast every ${first.interval} s for ${first.duration} s, ` +
      `with each system's heartbeats on at its default (25 s: Fanout's \`--heartbeat\`, the bare broadcaster's ping round from ws's README, Socket.IO's pingInterval). ` +
      'With so few messages, what a system does for idle sockets shows in its CPU per delivery.',
    '',
    '| system | connected | delivered / expected | p50 ms | p99 ms | server CPU µs per delivery (nodes + HAProxy + Redis) | node RSS KB per idle connection | node live heap KB per idle connection | HAProxy RSS KB per connection | node RSS total MB | problems |',
    '|---|---|---|---|---|---|---|---|---|---|---|',
    ...scale.map((r) => {
      const per = (seconds: number | null) => (seconds === null || r.delivered === 0 ? '–' : ((seconds / r.delivered) * 1e6).toFixed(2));
      const problems = [r.failed ? `${r.failed} failed to connect` : '', r.lostAfterReady ? `${r.lostAfterReady} dropped` : '', r.outOfOrder ? `${r.outOfOrder} out of order` : '', ...r.errors].filter(Boolean).join('; ');
      return (
        `| ${SCALE_NAMES[r.system] ?? r.system} | ${r.connected} of ${r.requested} | ${pct(r.ratio)} | ${ms(r.p50)} | **${ms(r.p99)}** | ` +
        `**${Number.isFinite(r.cpuPerDelivery) ? r.cpuPerDelivery.toFixed(2) : '–'}** (${per(r.cpu.nodes)} + ${per(r.cpu.haproxy)} + ${per(r.cpu.broker)}) | **${kb(r.nodeRssPerConn)}** | ${kb(r.nodeHeapPerConn)} | ${kb(r.haproxyRssPerConn)} | ${(r.nodeRss / 1048576).toFixed(0)} | ${problems || '–'} |`
      );
    }),
    '',
  );
  const f = scale.find((r) => r.system === 'fanout');
  const b = scale.find((r) => r.system === 'ws-bare');
  if (f && b) {
    const mark = (ok: boolean) => (ok ? '✅' : '❌');
    const c = f.cpuPerDelivery / b.cpuPerDelivery;
    const l = f.p99 / b.p99;
    const m = f.nodeRssPerConn / b.nodeRssPerConn;
    lines.push(
      '### Fanout against the bare ws broadcaster, same run',
      '',
      '| target | wanted | this run | |',
      '|---|---|---|---|',
      `| everything delivered | 100% | ${pct(f.ratio)} (${f.delivered} of ${f.expected}) | ${mark(f.delivered === f.expected)} |`,
      `| server CPU per delivery | ≤ 1.1× | ${c.toFixed(2)}× (${f.cpuPerDelivery.toFixed(2)} vs ${b.cpuPerDelivery.toFixed(2)} µs) | ${mark(c <= 1.1)} |`,
      `| p99 latency | ≤ 1.2× | ${l.toFixed(2)}× (${ms(f.p99)} vs ${ms(b.p99)} ms) | ${mark(l <= 1.2)} |`,
      `| node RSS per idle connection (${f.connected} connections) | ≤ 1.1× | ${m.toFixed(2)}× (${kb(f.nodeRssPerConn)} vs ${kb(b.nodeRssPerConn)} KB) | ${mark(m <= 1.1)} |`,
      `| (its live heap per idle connection) | ≤ 1.1× | ${(f.nodeHeapPerConn / b.nodeHeapPerConn).toFixed(2)}× (${kb(f.nodeHeapPerConn)} vs ${kb(b.nodeHeapPerConn)} KB) | ${mark(f.nodeHeapPerConn / b.nodeHeapPerConn <= 1.1)} |`,
      '',
    );
  }
  return lines;
}

export function markdown(run: BenchRun): string {
  const isChannel = (p: PointResult) => p.system === 'channels' || p.system === 'pusher' || p.system === 'sse' || p.system === 'sse-session';
  const echo = run.points.filter((p) => !isChannel(p));
  const channel = run.points.filter(isChannel);
  const header =
    '| system | msg/s | offered deliveries/s | deliveries/s | delivered / expected | p50 ms | p99 ms | max ms | server CPU µs per delivery (nodes + HAProxy + Redis) | node RSS MB | problems |\n|---|---|---|---|---|---|---|---|---|---|---|';
  const lines = [
    '# Benchmarks',
    '',
    `Measured ${run.startedAt} with \`${run.command}\`. Repeat with \`npm run bench -- --out .\`; \`npm run bench -- --help\` lists the flags.`,
    '',
    `Machine: ${run.machine}. ${run.versions}.`,
    '',
    `Every system runs on this one machine behind HAProxy (Fanout's generated config, \`option http-no-delay\`), ` +
      `with ${run.clients} WebSocket clients opened through HAProxy and one publisher sending R messages/s, ` +
      `each carrying its send time; every client checks the sequence and latency of what it gets. ` +
      `Points are interleaved (each rate runs every system before the next rate), ${run.duration} s measured per point after 1 s of warm-up. ` +
      `Broker: ${run.bus}. The load generator (raw-socket frame reader on worker threads) shares the 2 cores with the servers, ` +
      'and other work may run on the machine: compare systems within this run, as ratios.',
    '',
    '- **deliveries/s**: benchmark messages read by the clients inside the measurement window, per second (a backlog left from the warm-up counts: it is being delivered).',
    '- **delivered / expected**: every measured message × every client, counted until deliveries stop after the last send.',
    '- **latency**: from the publisher\'s send to the client\'s read, over every delivery of a measured message (warm-up excluded).',
    '- **server CPU per delivery**: CPU seconds (user + system, /proc) of the nodes, HAProxy and the bench\'s own Redis from the start of the window until the last delivery, divided by deliveries.',
    '- **node RSS**: the nodes\' resident memory with every client connected; memory per connection comes from the connection-scale run below.',
    '',
    ...targets(run),
    '## Broadcast (`/ws/echo` and its equivalents)',
    '',
    '![deliveries/s and p99 latency against offered load](benchmarks.svg)',
    '',
    header,
    ...echo.map((p) => pointRow(p)),
    '',
  ];
  const r = ratios(echo);
  if (r.length > 0) {
    lines.push(
      '### Fanout against Socket.IO, same run',
      '',
      '| msg/s | offered | deliveries/s, Fanout ÷ Socket.IO | server CPU per delivery, Fanout ÷ Socket.IO | p99 ms, Fanout vs Socket.IO |',
      '|---|---|---|---|---|',
      ...r,
      '',
    );
  }
  lines.push(
    'Where the time goes (profiled with `npm run bench -- --cpu-prof DIR` on this machine): in Fanout\'s nodes the `write` system call (`writeBuffer`) takes about half of the CPU, ' +
      'framing and queueing a few per cent; HAProxy spends as much again forwarding those writes. The cost follows the number of writes, not bytes: ' +
      'a broadcast to a thousand sockets keeps a node writing for milliseconds, and by default (`--coalesce-ms auto`) the next flush waits four times as long, ' +
      'so at high rates a socket\'s frames from several messages share one write, which is why CPU per delivery falls as the rate rises. ' +
      'Socket.IO\'s nodes are also dominated by the write call (`writev`, about half), then garbage collection (about a tenth); ' +
      'they spend several times Fanout\'s CPU per delivery because each packet is framed and queued through the engine and ws once per socket, where Fanout frames a message once per node.',
    '',
  );
  const turn = echo.filter((p) => p.system === 'fanout-turn');
  if (turn.length > 0) {
    const pairs = turn.flatMap((t) => {
      const f = echo.find((p) => p.system === 'fanout' && p.rate === t.rate);
      return f ? [`${t.rate} msg/s: ${f.cpuPerDelivery.toFixed(2)} against ${t.cpuPerDelivery.toFixed(2)} µs, p99 ${ms(f.p99)} against ${ms(t.p99)} ms`] : [];
    });
    lines.push(
      `The \`fanout-turn\` rows are the same Fanout with \`--coalesce-ms 0\`, writing every socket at the end of every event-loop turn that queued something. ` +
        `Server CPU per delivery, default against \`--coalesce-ms 0\`: ${pairs.join('; ')}.`,
      '',
    );
  }
  if (echo.some((p) => p.system === 'seed2')) {
    lines.push(
      'The seed server keeps its clients in one process\'s memory: on two nodes, a client only hears what was sent on its own node (about half), as the `seed2` row shows.',
      '',
    );
  }
  lines.push('## Channels (`/ws/v1`)', '');
  if (channel.length > 0) {
    lines.push(
      `All clients subscribe to one channel; one publisher publishes over its own WebSocket (\`{"type":"publish"}\`) or with \`POST /api/publish\` through HAProxy.` +
        (channel.some((p) => p.system === 'pusher') ? ` ${PUSHER_SENTENCE}` : ''),
        (channel.some((p) => p.system === 'sse' || p.system === 'sse-session')
          ? ' In the SSE rows the clients are Server-Sent Events streams through HAProxy\'s `fanout_sse` backend instead of WebSockets, read by a raw-socket client as cheap as the WebSocket one; the publisher is the WebSocket one. ' +
            '*Plain EventSource*: each client is `GET /ws/v1/sse?channel=bench`, and every message is an event named `message` whose `id:` is every channel\'s position (built per stream, for recovery on any node). ' +
            '*SDK sessions*: each client opens `GET /ws/v1/sse` and POSTs its `subscribe` frame to `/ws/v1/sse/{session}`, as the SDK\'s SSE transport does; every message is an event whose `id:` is its position in the session.'
          : ''),
      '',
      header,
      ...channel.map((p) => pointRow(p)),
      '',
      ...pusherAgainstChannels(channel),
    );
    const sse = sseRatios(channel);
    if (sse.length > 0) {
      lines.push(
        '### Channels over SSE against WebSocket, same run',
        '',
        `| SSE clients | msg/s | offered | server CPU per delivery, SSE ÷ WebSocket (goal ≤ ${SSE_CPU_GOAL}×) | p99 ms, SSE vs WebSocket | delivered, SSE vs WebSocket |`,
        '|---|---|---|---|---|---|',
        ...sse,
        '',
      );
    }
  } else {
    const why = run.skipped.find((s) => s.system === 'channels' || s.system.startsWith(SYSTEM_LABELS.channels));
    lines.push(`Not run${why ? `: ${why.reason}` : ''}.`, '');
  }
  if (run.brokers.length > 0) {
    const notCounted = run.brokers.filter((b) => !b.brokerCpuCounted).map((b) => BROKER_LABELS[b.broker]);
    lines.push(
      '## Brokers',
      '',
      'The same Fanout (2 nodes, `/ws/echo`, default flags) over each broker: at the sweep\'s target point, and with few clients and many messages, where the broker carries more of the work. ' +
        'The bench starts its own redis-server, nats-server and three-master Redis Cluster; RabbitMQ is the machine\'s node. ' +
        brokerWarmupSentence(run) +
        `The broker's CPU is the last term of the server CPU${notCounted.length ? ` (not counted for ${notCounted.join(', ')}: its process was not found)` : ''}.`,
      '',
      header.replace('| system |', '| broker |').replace('HAProxy + Redis)', 'HAProxy + broker)'),
      ...[...run.brokers]
        .sort((a, b) => b.point.clients - a.point.clients || a.point.rate - b.point.rate)
        .map((b) => pointRow(b.point, `${BROKER_LABELS[b.broker]}, ${b.point.clients} clients`)),
      '',
    );
  }
  const histories = run.histories ?? [];
  if (histories.length > 0) {
    lines.push(
      '## Channel history logs',
      '',
      'The channel path (`/ws/v1`, 2 nodes, one channel, the publisher over its own WebSocket) with history on each log that can hold it, the bus being that log\'s broker and `--history` left to its default: ' +
        'every publish is stored (an offset from the log) before it is delivered. ' + brokerWarmupSentence(run) + 'The broker\'s CPU is the last term of the server CPU.',
      '',
      header.replace('| system |', '| history |').replace('HAProxy + Redis)', 'HAProxy + broker)'),
      ...histories.map((h) => pointRow(h.point, `${HISTORY_LOG_LABELS[h.log]}, ${h.point.clients} clients`)),
      '',
    );
  }
  lines.push(...scaleSection(run.scale));
  if (run.skipped.length > 0) {
    lines.push('## Not run', '', ...run.skipped.map((s) => `- ${s.system}: ${s.reason}`), '');
  }
  const all = [...run.points, ...run.brokers.map((b) => b.point), ...histories.map((h) => h.point)];
  const loadgen = all.reduce((sum, p) => sum + p.cpu.loadgen, 0);
  const server = all.reduce((sum, p) => sum + p.cpu.nodes + p.cpu.haproxy + (p.cpu.broker ?? 0), 0);
  lines.push(`Load generator CPU over all points: ${loadgen.toFixed(1)} s, against ${server.toFixed(1)} s for the servers, HAProxy and the brokers.`, '');
  return lines.join('\n');
}

/** Two panels: deliveries/s against offered load (with the ideal line) and p99 (log scale). */
export function svg(points: readonly PointResult[]): string {
  const series = [...new Set(points.map(seriesOf))];
  const xMax = Math.max(1, ...points.map((p) => p.offered));
  const lines = (value: (p: PointResult) => number) =>
    series.map((name) => ({
      label: seriesLabel(name),
      color: COLORS[name] ?? '#000',
      dots: true,
      points: points
        .filter((p) => seriesOf(p) === name)
        .sort((a, b) => a.offered - b.offered)
        .map((p) => [p.offered, value(p)] as const),
    }));
  return linePanels([
    { title: 'deliveries/s vs offered', xLabel: 'offered deliveries/s', xMax, diagonal: true, series: lines((p) => p.deliveriesPerSec) },
    { title: 'p99 latency (ms, log) vs offered', xLabel: 'offered deliveries/s', xMax, logY: true, series: lines((p) => p.p99) },
  ]);
}

/** How long each broker ran unmeasured before its first point (a JVM compiles for its first minute or so). */
function brokerWarmupSentence(run: BenchRun): string {
  if (!run.brokerWarmup) return '';
  return `Each broker first carries ${run.brokerWarmup} s of the same load unmeasured, as a long-running broker would have: Kafka's JVM costs 2–3× more CPU per record while it compiles. `;
}
