/**
 * A client process that stops reading (SIGSTOP) while a publisher streams large messages: the
 * node must cut it off once its unsent bytes pass --max-buffered (close 4508, then the socket is
 * cut), while the clients that read keep getting every message with their usual latency. Once
 * straight to the node, once through HAProxy from the generated config, where the proxy's and
 * the kernel's buffers sit between the stuck client and the node.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { stopChild } from '../../harness/child.js';
import { forkFanoutServe } from '../../harness/fanout-process.js';
import { startHaproxy } from '../../harness/haproxy.js';
import { sleep, untilEvent } from '../../harness/wait.js';
import { scrape, scrapeUntil } from '../helpers/metrics.js';
import { closeAll, connect, type TestClient } from '../helpers/ws-client.js';

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
const STOPPED_CLIENT = `
import { WebSocket } from 'ws';
const ws = new WebSocket(process.argv[1]);
ws.on('open', () => process.stdout.write('open\\n'));
ws.on('error', () => {});
ws.on('close', () => process.exit(0));
`;

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function slowConsumerScenario(throughHaproxy: boolean): Promise<void> {
  // The publisher streams 6 MB/s on purpose: --rate-limit-bytes would cut it before the stopped client.
  const node = await forkFanoutServe(['--max-buffered', '65536', '--heartbeat', '0', '--rate-limit-bytes', '0']);
  const proxy = throughHaproxy ? await startHaproxy([node.port]) : undefined;
  const url = `ws://127.0.0.1:${proxy?.port ?? node.port}/ws/echo`;
  const stopped = spawn(process.execPath, ['--input-type=module', '-e', STOPPED_CLIENT, url], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
  const fast: TestClient[] = [];
  try {
    await untilEvent(stopped.stdout!, 'data', { failOn: ['end'], timeoutMs: 10_000, what: 'the stopped client to open' });
    stopped.kill('SIGSTOP');
    for (let i = 0; i < 5; i++) fast.push(await connect(url));
    const publisher = await connect(url);
    fast.push(publisher);

    // Stream 32 KB messages, each stamped with its send time, until the node cuts the stopped client.
    const pad = 'x'.repeat(32 * 1024);
    const latencies: number[][] = fast.map(() => []);
    fast.forEach((c, i) =>
      c.ws.on('message', (data: Buffer) => {
        const sentAt = Number(data.toString('latin1', 12, data.indexOf(' ', 12)));
        latencies[i]!.push(Date.now() - sentAt);
      }),
    );
    let sent = 0;
    const timer = setInterval(() => publisher.send(`t ${Date.now()} ${sent++} ${pad}`), 5);
    let m;
    try {
      m = await scrapeUntil(`http://127.0.0.1:${node.port}`, (s) => s.value('fanout_slow_consumer_closes_total') >= 1, 60_000);
      // Keep streaming a little after the cut: the others are not affected by it either. (A fixed
      // time on purpose: it is how long the others keep receiving after the cut.)
      await sleep(500);
    } finally {
      clearInterval(timer);
    }
    assert.equal(m.value('fanout_slow_consumer_closes_total', { endpoint: '/ws/echo' }), 1);
    await scrapeUntil(`http://127.0.0.1:${node.port}`, (s) => s.value('fanout_connections') === fast.length, 5000);

    for (const c of fast) {
      await c.until((msgs) => msgs.length === sent, 15_000, `all ${sent} messages`);
      // In order, none missing.
      c.messages.forEach((text, i) => assert.equal(text.split(' ')[3], String(i)));
      assert.equal(c.closeCode, undefined, 'a reading client is never cut');
    }
    const all = latencies.flat().sort((x, y) => x - y);
    const p50 = percentile(all, 50);
    const p99 = percentile(all, 99);
    process.stdout.write(`# ${sent} messages of 32 KB, ${fast.length} readers: latency p50 ${p50} ms, p99 ${p99} ms, max ${all.at(-1)} ms\n`);
    // A sanity bound, not a speed test: one stuck reader must not hold the others back for seconds.
    assert.ok(p99 < 2000, `p99 ${p99} ms`);
    assert.equal((await scrape(`http://127.0.0.1:${node.port}`)).value('fanout_slow_consumer_closes_total'), 1);
    assert.equal((node.output().match(/slow consumer closed/g) ?? []).length, 1, node.output());
  } finally {
    closeAll(fast);
    await stopChild(stopped, 'SIGKILL');
    await proxy?.stop();
    await node.stop();
  }
}

test('a client that stops reading is cut off at --max-buffered while the others keep every message and their latency', () => slowConsumerScenario(false));

test('through HAProxy, a client that stops reading is cut off at --max-buffered while the others keep every message', () => slowConsumerScenario(true));
