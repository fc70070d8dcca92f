/** The webhook queue's rules, the sender's batching and retries against a local HTTP server, and the memory occupancy store's crossings. */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, test } from 'node:test';
import { MemoryBroker } from '../../src/brokers/memory/bus.js';
import { createConfig } from '../../src/config/load.js';
import { Namespaces } from '../../src/config/namespaces.js';
import { DEFAULTS } from '../../src/config/schema.js';
import { ConfigError } from '../../src/errors.js';
import { signBody } from '../../src/outbound/http-caller.js';
import { MemoryOccupancyStore } from '../../src/brokers/memory/stores.js';
import { silentLogger } from '../../src/logger.js';
import { WebhookQueue, type WebhookEvent } from '../../src/webhooks/queue.js';
import { Webhooks, type WebhookResult } from '../../src/webhooks/webhooks.js';
import { until } from '../../harness/wait.js';
import { startNodes, wsUrl } from '../helpers/nodes.js';
import { OccupancySync } from '../../src/channels/occupancy.js';
import { LocalChannel } from '../../src/channels/subscriptions.js';
import type { OccupancyChange, OccupancyEvent, OccupancyStore } from '../../src/stores/store.js';
import type { Client } from '../../src/transport/client.js';
import { BusUnavailableError } from '../../src/errors.js';
import { SECRET as JWT_SECRET, sign } from '../helpers/security.js';
import { closeAll, connect, type TestClient } from '../helpers/ws-client.js';

let seq = 0;
function event(channel: string, time_ms = 1000, name: WebhookEvent['name'] = 'channel_occupied'): WebhookEvent {
  return { id: `e${++seq}`, name, channel, time_ms };
}

describe('WebhookQueue', () => {
  test('batches of at most maxBatch, oldest first; a failed batch goes again first, then the rest in order', () => {
    const q = new WebhookQueue({ capacity: 100, maxBatch: 2, retryMs: 60_000 });
    const events = ['a', 'b', 'a', 'c', 'a'].map((c) => event(c));
    for (const e of events) q.push(e);
    const first = q.take(1000).batch;
    assert.deepEqual(first, events.slice(0, 2));
    assert.ok(q.sending);
    assert.throws(() => q.take(1000), /already out/);
    assert.deepEqual(q.failed(), first);
    assert.deepEqual(q.take(1000).batch, first, 'the same events (and ids) again');
    assert.deepEqual(q.delivered(), first);
    assert.deepEqual(q.take(1000).batch, events.slice(2, 4));
    q.delivered();
    assert.deepEqual(q.take(1000).batch, events.slice(4));
    q.delivered();
    assert.equal(q.depth, 0);
    assert.deepEqual(q.take(1000).batch, []);
  });

  test('events tried and older than the retry window are dropped when their batch would go again; every event is tried once', () => {
    const q = new WebhookQueue({ capacity: 100, maxBatch: 2, retryMs: 5000 });
    const old = event('a', 1000);
    const fresh = event('a', 5500);
    const waiting = event('b', 1000);
    q.push(old);
    q.push(fresh);
    q.push(waiting);
    q.take(2000);
    q.failed();
    const { batch, expired } = q.take(6001);
    assert.deepEqual(expired, [old]);
    assert.deepEqual(batch, [fresh, waiting], 'as old as the dropped one, but never sent: it gets its try');
  });

  test('past the cap the oldest waiting event is dropped, never one of the batch out', () => {
    const q = new WebhookQueue({ capacity: 3, maxBatch: 1, retryMs: 60_000 });
    const [a, b, c, d] = [event('a'), event('b'), event('c'), event('d')];
    q.push(a!);
    q.push(b!);
    q.push(c!);
    assert.deepEqual(q.take(1000).batch, [a]);
    assert.equal(q.push(d!), b, 'b, the oldest not out, makes room');
    assert.equal(q.depth, 3);
    q.delivered();
    assert.deepEqual(q.take(1000).batch, [c]);
  });
});

describe('Webhooks sender', () => {
  const servers: Server[] = [];
  after(() => {
    for (const s of servers) s.close();
  });

  async function receiver(statuses: number[]): Promise<{ url: string; bodies: Array<{ raw: string; signature: string | undefined }> }> {
    const bodies: Array<{ raw: string; signature: string | undefined }> = [];
    const server = createServer((req, res) => {
      let raw = '';
      req.on('data', (c: Buffer) => (raw += c.toString()));
      req.on('end', () => {
        bodies.push({ raw, signature: req.headers['x-fanout-signature'] as string | undefined });
        res.writeHead(statuses.shift() ?? 200).end('x'.repeat(10_000));
      });
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, bodies };
  }

  function sender(url: string, counts: Map<string, number>, retry = 60): Webhooks {
    return new Webhooks({
      url, secret: 's', nodeId: 'n1', timeout: 2, retry, logger: silentLogger(),
      observe: (name, result: WebhookResult, n) => counts.set(`${name}/${result}`, (counts.get(`${name}/${result}`) ?? 0) + n),
    });
  }

  test('events emitted together go in one signed request; 500s are retried with the same ids until a 2xx', async () => {
    const { url, bodies } = await receiver([500, 503]);
    const counts = new Map<string, number>();
    const hooks = sender(url, counts);
    hooks.emit({ name: 'channel_occupied', channel: 'c' });
    hooks.emit({ name: 'member_added', channel: 'c', user: 'u' });
    await until(() => counts.get('channel_occupied/delivered') === 1, { timeoutMs: 10_000, what: 'delivery' });
    assert.equal(bodies.length, 3);
    const parsed = bodies.map((b) => JSON.parse(b.raw) as { events: WebhookEvent[] });
    assert.equal(parsed[0]!.events.length, 2, 'batched');
    assert.deepEqual(parsed[2]!.events.map((e) => e.id), parsed[0]!.events.map((e) => e.id), 'same ids on every attempt');
    assert.deepEqual(parsed[0]!.events[1], { ...parsed[0]!.events[1]!, name: 'member_added', channel: 'c', user: 'u' });
    for (const b of bodies) assert.equal(b.signature, signBody('s', b.raw));
    assert.equal(counts.get('member_added/retried'), 2);
    assert.equal(hooks.depth, 0);
    await hooks.close();
  });

  test('a 4xx rejects the batch (not sent again); past --webhook-retry events are dropped', async () => {
    const rejecting = await receiver([400]);
    const counts = new Map<string, number>();
    const a = sender(rejecting.url, counts);
    a.emit({ name: 'channel_vacated', channel: 'c' });
    await until(() => counts.get('channel_vacated/rejected') === 1, { timeoutMs: 5000, what: 'rejection' });
    assert.equal(rejecting.bodies.length, 1);
    await a.close();

    const failing = await receiver(Array(100).fill(500));
    const b = sender(failing.url, counts, 0.3);
    b.emit({ name: 'channel_occupied', channel: 'd' });
    await until(() => counts.get('channel_occupied/dropped') === 1, { timeoutMs: 10_000, what: 'the drop' });
    assert.equal(b.depth, 0);
    await b.close();
  });
});

describe('MemoryOccupancyStore', () => {
  test('two nodes on one broker: each crossing is reported once, to the node whose write made it', async () => {
    const broker = new MemoryBroker();
    const n1 = new MemoryOccupancyStore(broker, 'n1');
    const n2 = new MemoryOccupancyStore(broker, 'n2');
    assert.deepEqual(await n1.update({ channel: 'c', subscribers: 1, users: [['u', 1]] }), [
      { name: 'channel_occupied', channel: 'c' },
      { name: 'member_added', channel: 'c', user: 'u' },
    ]);
    assert.deepEqual(await n2.update({ channel: 'c', subscribers: 1, users: [['u', 1]] }), [], 'same user, other node');
    assert.deepEqual(await n1.update({ channel: 'c', subscribers: 0, users: [['u', 0]] }), []);
    assert.deepEqual(await n2.update({ channel: 'c', subscribers: 0, users: [['u', 0]] }), [
      { name: 'member_removed', channel: 'c', user: 'u' },
      { name: 'channel_vacated', channel: 'c' },
    ]);
    assert.deepEqual(await n2.update({ channel: 'c', subscribers: 0, users: [] }), [], 'writing the same numbers again changes nothing');
  });
});

describe('webhook flags', () => {
  function rejected(input: Parameters<typeof createConfig>[0], flag: string, reason: RegExp): void {
    assert.throws(() => createConfig(input), (err: unknown) => err instanceof ConfigError && err.flag === flag && reason.test(err.reason));
  }

  test('--webhook needs --webhook-secret and an http(s) URL; --webhook-retry is seconds, 60 by default', () => {
    const config = createConfig({ webhook: 'https://app.example/fanout', webhookSecret: 's' });
    assert.equal(config.webhook, 'https://app.example/fanout');
    assert.equal(config.webhookRetry, DEFAULTS.webhookRetry);
    assert.equal(DEFAULTS.webhookRetry, 60);
    rejected({ webhook: 'https://app.example/fanout' }, '--webhook-secret', /required with --webhook/);
    rejected({ webhook: 'ftp://app.example', webhookSecret: 's' }, '--webhook', /http:\/\/ or https:\/\//);
    rejected({ webhook: 'http://a', webhookSecret: 's', webhookRetry: '-1' }, '--webhook-retry', /0 or more/);
    assert.equal(createConfig({}).webhook, undefined, 'off by default');
  });
});

describe('in-process cluster on one memory broker', () => {
  test('two nodes, the memory store: each crossing once, members per user, over a real webhook receiver', async () => {
    const events: Array<{ name: string; channel: string; user?: string }> = [];
    const server = createServer((req, res) => {
      let raw = '';
      req.on('data', (c: Buffer) => (raw += c.toString()));
      req.on('end', () => {
        events.push(...(JSON.parse(raw) as { events: typeof events }).events);
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const hook = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
    const nodes = await startNodes(2, { presence: 'room:*', jwtSecret: JWT_SECRET, webhook: hook, webhookSecret: 's' });
    const clients: TestClient[] = [];
    try {
      const token = await sign({ channels: ['room:*'] }, { sub: 'ann' });
      for (const node of nodes) {
        const client = await connect(`${wsUrl(node, '/ws/v1')}?token=${token}`);
        clients.push(client);
        client.sendJson({ type: 'subscribe', channel: 'room:x', id: 1 });
        await client.json((f) => f['type'] === 'subscribed');
      }
      await until(() => events.length >= 2, { timeoutMs: 5000, what: 'occupied and added' });
      for (const client of clients) {
        client.sendJson({ type: 'unsubscribe', channel: 'room:x', id: 2 });
        await client.json((f) => f['type'] === 'unsubscribed');
      }
      await until(() => events.length >= 4, { timeoutMs: 5000, what: 'removed and vacated' });
      assert.deepEqual(events.map((e) => `${e.name}${e.user ? `:${e.user}` : ''}`), ['channel_occupied', 'member_added:ann', 'member_removed:ann', 'channel_vacated']);
    } finally {
      closeAll(clients);
      await Promise.all(nodes.map((n) => n.close()));
      server.close();
    }
  });
});

describe('OccupancySync (the channel layer\'s writes)', () => {
  /** A memory store that refuses its first `failures` writes, as a store that is away does. */
  function flakyStore(failures: number): OccupancyStore & { writes: OccupancyChange[] } {
    const inner = new MemoryOccupancyStore(new MemoryBroker(), 'n1');
    const writes: OccupancyChange[] = [];
    return {
      kind: 'test',
      writes,
      async update(change) {
        writes.push(change);
        if (failures-- > 0) throw new BusUnavailableError('away');
        return inner.update(change);
      },
      start() {},
    };
  }

  function client(user: string): Client {
    return { identity: { user } } as unknown as Client;
  }

  test('a burst costs one write in flight and one after it; a refused write is merged and written again', async () => {
    const store = flakyStore(1);
    const events: OccupancyEvent[] = [];
    const tracked: Array<Promise<unknown>> = [];
    const sync = new OccupancySync({ track: (p) => void tracked.push(p.catch(() => {})), logger: silentLogger() }, { store, emit: (e) => events.push(e) });
    const local = new LocalChannel('room:a', 't', new Namespaces(createConfig({ presence: 'room:*' })).resolve('room:a'));
    const clients = [client('u1'), client('u2'), client('u1')];
    for (const c of clients) {
      local.live.add(c);
      sync.changed(local, c, 1);
    }
    local.live.delete(clients[2]!);
    sync.changed(local, clients[2]!, -1);
    assert.equal(store.writes.length, 1, 'one write in flight; the rest wait for it');
    await until(() => events.length >= 3, { timeoutMs: 5000, what: 'the retried write' });
    // Users of one write are independent: their order is not kept.
    assert.deepEqual(events[0], { name: 'channel_occupied', channel: 'room:a' });
    assert.deepEqual(events.slice(1).map((e) => `${e.name}:${e.user}`).sort(), ['member_added:u1', 'member_added:u2']);
    assert.ok(store.writes.length <= 3, `${store.writes.length} writes`);
    const last = store.writes.at(-1)!;
    assert.equal(last.subscribers, 2);
    assert.deepEqual([...last.users].sort(), [['u1', 1], ['u2', 1]], 'the latest numbers, the refused write\'s users merged in');
    sync.stop();
  });
});
