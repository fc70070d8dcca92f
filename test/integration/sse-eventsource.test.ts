/**
 * A plain EventSource, no SDK (issue 29): the npm `eventsource` client reads a channel through the
 * generated HAProxy config in front of two `fanout serve` nodes on Redis. The node holding its
 * stream is SIGKILLed mid-stream; EventSource reconnects through HAProxy with `Last-Event-ID`, the
 * other node recovers the channel from there: every published message once, in order.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { EventSource } from 'eventsource';
import { forkFanoutServe, waitReadyPort, type ServerProcess } from '../../harness/fanout-process.js';
import { startHaproxy, type RunningHaproxy } from '../../harness/haproxy.js';
import { sleep, until } from '../../harness/wait.js';
import { REDIS_URL } from '../helpers/brokers.js';
import { uniquePrefix } from '../helpers/nodes.js';

const KEY = 'sse-eventsource-key';
const procs: ServerProcess[] = [];
let proxy: RunningHaproxy | undefined;
after(async () => {
  await proxy?.stop();
  await Promise.all(procs.map((p) => p.stop('SIGKILL')));
});

async function publish(port: number, data: number): Promise<void> {
  const res = await fetch(`http://127.0.0.1:${port}/api/publish`, {
    method: 'POST',
    headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify({ channel: 'ticker', data }),
  });
  await res.arrayBuffer();
  assert.equal(res.status, 200);
}

test('EventSource through HAProxy recovers across a node kill with Last-Event-ID: no gap, no duplicate', async () => {
  const busPrefix = uniquePrefix('ssees');
  for (const id of ['es1', 'es2']) procs.push(await forkFanoutServe(['--bus', REDIS_URL, '--bus-prefix', busPrefix, '--node-id', `${busPrefix}-${id}`, '--api-key', KEY, '--drain-delay', '0']));
  for (const p of procs) await waitReadyPort(p.port);
  proxy = await startHaproxy(procs.map((p) => p.port), { balance: 'roundrobin' });

  const received: number[] = [];
  const nodes: string[] = [];
  const recovered: unknown[] = [];
  const source = new EventSource(`http://127.0.0.1:${proxy.port}/ws/v1/sse?channel=ticker`);
  try {
    source.addEventListener('connected', (e) => nodes.push((JSON.parse(e.data) as { node: string }).node));
    source.addEventListener('subscribed', (e) => recovered.push((JSON.parse(e.data) as { recovered?: boolean }).recovered));
    source.addEventListener('message', (e) => received.push((JSON.parse(e.data) as { data: number }).data));
    await until(() => recovered.length === 1, { timeoutMs: 10_000, what: 'the first subscribed event' });
    const victim = procs.find((p) => p.id === nodes[0])!;
    const survivor = procs.find((p) => p !== victim)!;
    assert.ok(victim && survivor, `the stream is on one of the nodes (${nodes[0]})`);

    let sent = 0;
    for (; sent < 20; sent++) await publish(survivor.port, sent);
    await until(() => received.length === 20, { timeoutMs: 10_000, what: 'the first 20 messages' });
    await victim.stop('SIGKILL');
    // Published while the stream is down and being reopened on the survivor.
    for (; sent < 60; sent++) {
      await publish(survivor.port, sent);
      await sleep(10);
    }
    await until(() => received.length >= 60, { timeoutMs: 20_000, what: 'every message after the kill', detail: () => JSON.stringify(received) });
    await sleep(200);
    assert.deepEqual(received, Array.from({ length: 60 }, (_, i) => i), 'every message once, in order');
    assert.equal(nodes.length, 2, 'one reconnect');
    assert.equal(nodes[1], survivor.id);
    assert.deepEqual(recovered, [undefined, true], 'the second subscribe recovered from Last-Event-ID');
  } finally {
    source.close();
  }
});
