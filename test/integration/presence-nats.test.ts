import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { type BrokerProcess, startNatsServer } from '../../harness/brokers.js';
import { forkFanoutServe, type ServerProcess, waitReadyPort } from '../../harness/fanout-process.js';
import { until } from '../../harness/wait.js';
import { connectChannels, frames, request, subscribe, type Frame } from '../helpers/channels.js';
import { uniquePrefix } from '../helpers/nodes.js';
import { closeAll, type TestClient } from '../helpers/ws-client.js';

// Real `fanout serve` processes with presence in NATS JetStream KV (no Redis anywhere).
const NATS_URL = 'nats://127.0.0.1:4222';
const PRESENCE_TTL = 1;
const nodes: ServerProcess[] = [];
const clients: TestClient[] = [];

after(async () => {
  closeAll(clients);
  await Promise.all(nodes.map((n) => n.stop('SIGKILL')));
});

async function startNodes(count: number, url: string, prefix: string): Promise<ServerProcess[]> {
  const started = await Promise.all(
    Array.from({ length: count }, (_, i) =>
      forkFanoutServe([
        '--bus', url, '--history', url, '--bus-prefix', prefix, '--node-id', `${prefix}-n${i + 1}`,
        '--presence', 'chat:*', '--presence-ttl', String(PRESENCE_TTL), '--heartbeat', '1',
      ]),
    ),
  );
  nodes.push(...started);
  for (const n of started) await waitReadyPort(n.port);
  return started;
}

async function present(node: ServerProcess, channel: string): Promise<{ client: TestClient; id: string }> {
  const client = await connectChannels(node.port);
  clients.push(client);
  await subscribe(client, channel);
  return { client, id: frames(client)[0]!.client as string };
}

async function listed(client: TestClient, channel: string): Promise<string[]> {
  const reply = await request(client, { type: 'presence', channel });
  assert.equal(reply.type, 'presence', JSON.stringify(reply));
  return (reply.clients as Frame[]).map((c) => c.client as string).sort();
}

function events(client: TestClient, type: 'join' | 'leave', id: string): Frame[] {
  return frames(client).filter((f) => f.type === type && f.client === id);
}

/** Waits until `client`'s presence list of `channel` is exactly `ids`. */
async function untilListed(client: TestClient, channel: string, ids: string[], timeoutMs = 10_000): Promise<void> {
  const want = [...ids].sort();
  let last: string[] = [];
  await until(
    async () => {
      last = await listed(client, channel).catch(() => ['(unavailable)']);
      return JSON.stringify(last) === JSON.stringify(want);
    },
    { timeoutMs, intervalMs: 100, what: `presence of ${channel} to be ${want.join(',')}`, detail: () => `listed ${last.join(',')}` },
  );
}

test('presence lists agree across nodes and join/leave events cross nodes', async () => {
  const [n1, n2] = await startNodes(2, NATS_URL, uniquePrefix('pn'));
  const a = await present(n1!, 'chat:room');
  const b = await present(n2!, 'chat:room');
  // a (on n1) hears b join on n2.
  await a.client.json((f) => f.type === 'join' && f.client === b.id);
  assert.deepEqual(await listed(a.client, 'chat:room'), [a.id, b.id].sort());
  assert.deepEqual(await listed(b.client, 'chat:room'), [a.id, b.id].sort());

  b.client.close();
  const leave = await a.client.json<Frame>((f) => f.type === 'leave' && f.client === b.id);
  assert.equal(leave.channel, 'chat:room');
  assert.deepEqual(await listed(a.client, 'chat:room'), [a.id]);
  // Another channel's presence is its own.
  const c = await present(n2!, 'chat:other');
  assert.deepEqual(await listed(c.client, 'chat:other'), [c.id]);
  assert.deepEqual(await listed(c.client, 'chat:room'), [a.id]);
});

test('a SIGKILLed node\'s clients leave within --presence-ttl: one leave event each, with two live nodes sweeping', async () => {
  const [n1, n2, victimNode] = await startNodes(3, NATS_URL, uniquePrefix('pk'));
  const w1 = await present(n1!, 'chat:ops');
  const w2 = await present(n2!, 'chat:ops');
  const v1 = await present(victimNode!, 'chat:ops');
  const v2 = await present(victimNode!, 'chat:ops');
  await untilListed(w1.client, 'chat:ops', [w1.id, w2.id, v1.id, v2.id]);
  await untilListed(w2.client, 'chat:ops', [w1.id, w2.id, v1.id, v2.id]);

  victimNode!.child.kill('SIGKILL');
  const killedAt = Date.now();
  for (const w of [w1, w2]) {
    for (const v of [v1, v2]) await w.client.json((f) => f.type === 'leave' && f.client === v.id, (PRESENCE_TTL + 5) * 1000);
  }
  const within = Date.now() - killedAt;
  await untilListed(w1.client, 'chat:ops', [w1.id, w2.id]);
  await untilListed(w2.client, 'chat:ops', [w1.id, w2.id]);
  // Several more sweeps by both survivors: still one leave per departed client on each watcher.
  await new Promise((r) => setTimeout(r, 3 * PRESENCE_TTL * 1000));
  for (const w of [w1, w2]) {
    for (const v of [v1, v2]) assert.equal(events(w.client, 'leave', v.id).length, 1, `one leave of ${v.id} on ${w.id} (left after ${within} ms)`);
  }
});

test('a NATS server restarted without its JetStream state: subscribers are told to resubscribe (4510), and presence works again on every node', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'fanout-nats-js-'));
  let server: BrokerProcess | undefined;
  try {
    server = await startNatsServer(['-js', '-sd', dir]);
    const [n1, n2] = await startNodes(2, server.url, uniquePrefix('pr'));
    const a = await present(n1!, 'chat:r');
    const b = await present(n2!, 'chat:r');
    await untilListed(a.client, 'chat:r', [a.id, b.id]);
    await untilListed(b.client, 'chat:r', [a.id, b.id]);

    await server.stop('SIGKILL');
    // While NATS is away, a presence list is refused (not an empty list).
    const refused = await request(a.client, { type: 'presence', channel: 'chat:r' }, 10_000);
    assert.equal(refused.type, 'error');
    assert.equal(refused.code, 'unavailable');

    rmSync(dir, { recursive: true, force: true });
    await server.start();
    // The channels' history went with the server's state: their subscribers are told to resubscribe
    // (4510), and the clients that come back are listed on both nodes, with nothing left of the
    // registrations NATS forgot.
    for (const t of [a, b]) await until(() => t.client.closeCode === 4510, { timeoutMs: 20_000, what: `4510 for ${t.id}` });
    for (const n of [n1!, n2!]) await waitReadyPort(n.port, 15_000);
    const a2 = await present(n1!, 'chat:r');
    const b2 = await present(n2!, 'chat:r');
    await untilListed(a2.client, 'chat:r', [a2.id, b2.id], 20_000);
    await untilListed(b2.client, 'chat:r', [a2.id, b2.id], 20_000);
    // And the KV works as before: a new client's join is seen by the other node.
    const c = await present(n2!, 'chat:r');
    await a2.client.json((f) => f.type === 'join' && f.client === c.id, 10_000);
    await untilListed(a2.client, 'chat:r', [a2.id, b2.id, c.id]);
  } finally {
    await server?.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a NATS server without JetStream: one warning line each for history and presence saying what to change, and the node is not ready', async () => {
  const server = await startNatsServer();
  try {
    const prefix = uniquePrefix('pj');
    const n1 = await forkFanoutServe(['--bus', server.url, '--bus-prefix', prefix, '--presence', 'chat:*', '--presence-ttl', String(PRESENCE_TTL)]);
    nodes.push(n1);
    const warnings = ['--history nats://: JetStream is not enabled on the NATS server (start it with -js)', 'presence needs JetStream: start nats-server with -js, or give --history redis://host:port'];
    for (const warning of warnings) {
      await until(() => n1.output().includes(warning), { timeoutMs: 10_000, what: warning, detail: () => n1.output().slice(-2000) });
    }
    await waitReadyPort(n1.port, 5000, 503);
    // Retries keep failing, but each line is said once.
    await new Promise((r) => setTimeout(r, 3 * PRESENCE_TTL * 1000));
    for (const warning of warnings) assert.equal(n1.output().split(warning).length - 1, 1, n1.output().slice(-2000));
  } finally {
    await server.destroy();
  }
});
