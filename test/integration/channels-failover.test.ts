import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Redis } from 'ioredis';
import { forkFanoutServe, type ServerProcess, waitReadyPort } from '../../harness/fanout-process.js';
import { type RunningHaproxy, startHaproxy } from '../../harness/haproxy.js';
import { until } from '../../harness/wait.js';
import { REDIS_URL } from '../helpers/brokers.js';
import { connectChannels, frames, messagesOf, publish, request, subscribe, waitMessages, type Frame } from '../helpers/channels.js';
import { uniquePrefix } from '../helpers/nodes.js';
import { closeAll, type TestClient } from '../helpers/ws-client.js';

// Real `fanout serve` processes on real Redis behind a real HAProxy; one node is SIGKILLed.
const API_KEY = 'failover-key';
const PRESENCE_TTL = 1;
let nodes: ServerProcess[] = [];
let proxy: RunningHaproxy;
let busPrefix: string;

before(async () => {
  busPrefix = uniquePrefix('fo');
  const args = (i: number) => [
    '--bus', REDIS_URL, '--bus-prefix', busPrefix, '--node-id', `fo${i}`, '--api-key', API_KEY,
    '--presence', 'chat:*', '--presence-ttl', String(PRESENCE_TTL), '--heartbeat', '1',
  ];
  nodes = await Promise.all([1, 2, 3].map((i) => forkFanoutServe(args(i))));
  for (const n of nodes) await waitReadyPort(n.port);
  proxy = await startHaproxy(nodes.map((n) => n.port));
});

after(async () => {
  await proxy?.stop();
  await Promise.all(nodes.map((n) => n.stop('SIGKILL')));
  const admin = new Redis(REDIS_URL);
  const keys = await admin.keys(`${busPrefix}:*`);
  if (keys.length) await admin.del(...keys);
  await admin.quit();
});

function byId(id: unknown): ServerProcess {
  const node = nodes.find((n) => n.id === id);
  assert.ok(node, `no node ${String(id)}`);
  return node;
}

async function apiPublish(node: ServerProcess, channel: string, data: unknown): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${node.port}/api/publish`, {
    method: 'POST',
    headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify({ channel, data }),
  });
  assert.equal(res.status, 200);
  return ((await res.json()) as { offset: number }).offset;
}

/** Connects through HAProxy until a node other than `avoid` answers (HAProxy needs a moment to see a dead node). */
async function connectAvoiding(avoid: string): Promise<TestClient> {
  let client: TestClient | undefined;
  await until(
    async () => {
      // A refused connection (the dead node's slot) throws: `until` tries again.
      const c = await connectChannels(proxy.port);
      if (frames(c)[0]!.node !== avoid) client = c;
      else c.close();
      return client !== undefined;
    },
    { timeoutMs: 15_000, intervalMs: 100, what: 'a live node through HAProxy' },
  );
  return client!;
}

test('a node killed with SIGKILL loses nothing for clients that recover on another node, and its clients leave presence', async () => {
  const clients: TestClient[] = [];
  try {
    // The victim: a client that subscribed (with presence) on some node, through HAProxy.
    const victim = await connectChannels(proxy.port);
    clients.push(victim);
    const victimNode = frames(victim)[0]!.node as string;
    const victimId = frames(victim)[0]!.client as string;
    const killed = byId(victimNode);
    const survivors = nodes.filter((n) => n !== killed);
    const { epoch } = await subscribe(victim, 'orders');
    await subscribe(victim, 'chat:ops');

    // A watcher on a surviving node, in the same presence channel.
    const watcher = await connectChannels(survivors[0]!.port);
    clients.push(watcher);
    await subscribe(watcher, 'chat:ops');
    const listed = await request(watcher, { type: 'presence', channel: 'chat:ops' });
    assert.ok((listed.clients as Frame[]).some((c) => c.client === victimId), 'the victim is present before the kill');

    // Messages published on the victim's node and elsewhere, acknowledged before the kill.
    const acked: number[] = [];
    for (let i = 1; i <= 5; i++) acked.push(await publish(victim, 'orders', `before ${i}`));
    acked.push(await apiPublish(survivors[1]!, 'orders', 'before api'));
    await waitMessages(victim, 'orders', 6);
    const lastSeen = messagesOf(victim, 'orders').at(-1)!.offset as number;
    assert.equal(lastSeen, 6);

    killed.child.kill('SIGKILL');
    await victim.waitClose(5000);
    // Published while the victim is away, on both surviving nodes.
    for (let i = 1; i <= 6; i++) await apiPublish(survivors[i % 2]!, 'orders', `missed ${i}`);

    // The dead node's client leaves presence within --presence-ttl (plus a heartbeat).
    const leave = await watcher.json<Frame>((f) => f.type === 'leave' && f.client === victimId, (PRESENCE_TTL + 5) * 1000);
    assert.equal(leave.channel, 'chat:ops');
    const after = await request(watcher, { type: 'presence', channel: 'chat:ops' });
    assert.ok(!(after.clients as Frame[]).some((c) => c.client === victimId), 'the dead node\'s client is no longer listed');

    // The victim comes back through HAProxy on a live node and recovers exactly what it missed.
    const back = await connectAvoiding(victimNode);
    clients.push(back);
    const reply = await subscribe(back, 'orders', { offset: lastSeen, epoch: epoch as string });
    assert.equal(reply.recovered, true);
    assert.equal(reply.offset, 12);
    const recovered = messagesOf(back, 'orders');
    assert.deepEqual(recovered.map((m) => m.offset), [7, 8, 9, 10, 11, 12]);
    assert.deepEqual(recovered.map((m) => m.data), [1, 2, 3, 4, 5, 6].map((i) => `missed ${i}`));

    // Every acknowledged message survived the kill: the full history has them all.
    const history = await request(back, { type: 'history', channel: 'orders' });
    const stored = (history.messages as Array<{ offset: number; data: string }>).map((m) => m.offset);
    for (const offset of acked) assert.ok(stored.includes(offset), `acked offset ${offset} is in history`);
  } finally {
    closeAll(clients);
  }
});
