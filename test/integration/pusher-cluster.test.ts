/**
 * One piece on purpose, over 400 lines: every case shares one two-node cluster per bus (starting
 * one is the slow part), so the second app rides the same cluster instead of a file of its own.
 *
 * The Pusher Channels protocol (docs/pusher.md) with the real libraries from npm: two `fanout
 * serve` nodes behind HAProxy from our generated config, once on Redis and once on Kafka with no
 * Redis. pusher-js 8 in Node on `/app/{key}` (public, private, presence, cache channels, client
 * events, signin) and the `pusher` server library on `/apps/{id}/…` (trigger with socket_id
 * exclusion, batch, channel queries, users, terminateUserConnections); the wrong answers are
 * Pusher's: an unknown key gets 4001, a bad signature or an old timestamp 401, oversized data 413,
 * 101 channels 400, a client event on a public channel a pusher:error. A second app from
 * `pusher-apps:` in a config file runs beside the flags' app: same channel names, nothing crosses,
 * each app's secret signs only its own requests, subscriptions and webhooks.
 */
import assert from 'node:assert/strict';
import { createHash, createHmac } from 'node:crypto';
import { Agent, createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import PusherServer from 'pusher';
import pusherJs from 'pusher-js';
import { forkFanoutServe, waitReadyPort, type ServerProcess } from '../../harness/fanout-process.js';
import { startHaproxy, type RunningHaproxy } from '../../harness/haproxy.js';
import { until } from '../../harness/wait.js';
import { REDIS_URL } from '../helpers/brokers.js';
import { uniquePrefix } from '../helpers/nodes.js';
import { tempDir } from '../helpers/security.js';
import { connect } from '../helpers/ws-client.js';

const KAFKA = process.env.FANOUT_TEST_KAFKA ?? '127.0.0.1:9092';
const APP = { appId: 'app-1', key: 'app-key', secret: 'app-secret' };
/** The second app, from the config file's `pusher-apps:`. */
const APP2 = { appId: 'app-2', key: 'app2-key', secret: 'app2-secret' };

// pusher-js is CommonJS and its types do not resolve as a class under NodeNext: the part used here.
interface Bindable {
  bind(event: string, handler: (data: any) => void): void;
  unbind(event: string, handler: (data: any) => void): void;
  trigger(event: string, data: unknown): boolean;
}
interface Client {
  readonly connection: Bindable & { readonly state: string; readonly socket_id: string | undefined };
  readonly user: Bindable & { readonly signinDonePromise: Promise<void> | null };
  subscribe(channel: string): Bindable;
  channel(channel: string): Bindable;
  send_event(event: string, data: unknown, channel?: string): boolean;
  signin(): void;
  disconnect(): void;
}
const PusherClient = pusherJs as unknown as new (key: string, options: Record<string, unknown>) => Client;
type AuthCallback = (error: Error | null, data: { auth: string; channel_data?: string; user_data?: string } | null) => void;

for (const [name, bus] of (process.env.PUSHER_ONLY_REDIS ? [['Redis', () => REDIS_URL]] as const : [
  ['Redis', () => REDIS_URL],
  ['Kafka, no Redis', () => `kafka://${KAFKA}/${uniquePrefix('pusher')}`],
] as const)) {
  describe(`Pusher protocol, two nodes behind HAProxy on ${name}`, { timeout: 120_000 }, () => defineSuite(bus(), name === 'Redis'));
}

function defineSuite(busUrl: string, withWebhooks: boolean): void {
  let nodes: ServerProcess[] = [];
  let proxy: RunningHaproxy;
  let server: PusherServer;
  let server2: PusherServer;
  const clients: Client[] = [];
  const files = tempDir();
  // --pusher-webhook needs the cluster-wide occupancy store: Redis has one, Kafka not yet (docs/pusher.md).
  const hooks: Array<{ url: string | undefined; headers: IncomingHttpHeaders; rawBody: string }> = [];
  const receiver = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      hooks.push({ url: req.url, headers: req.headers, rawBody: body });
      res.end('ok');
    });
  });

  before(async () => {
    const prefix = uniquePrefix('pu');
    const args = ['--bus', busUrl, '--bus-prefix', prefix, '--pusher-app-id', APP.appId, '--pusher-key', APP.key, '--pusher-secret', APP.secret, '--allowed-origins', '*'];
    const second = [`pusher-apps:`, `  - id: ${APP2.appId}`, `    key: ${APP2.key}`, `    secret: ${APP2.secret}`];
    if (withWebhooks) {
      await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
      const url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/pusher/webhook`;
      args.push('--pusher-webhook', url);
      second.push(`    webhook: ${url}2`);
    }
    args.push('--config', files.file('fanout.yaml', second.join('\n') + '\n'));
    nodes = await Promise.all([1, 2].map((i) => forkFanoutServe([...args, '--node-id', `${prefix}-n${i}`])));
    await Promise.all(nodes.map((n) => waitReadyPort(n.port, 30_000)));
    proxy = await startHaproxy(nodes.map((n) => n.port));
    // No keep-alive: an idle pooled socket would hold the test process open until HAProxy's timeout.
    server = new PusherServer({ ...APP, host: '127.0.0.1', port: String(proxy.port), useTLS: false, agent: new Agent({ keepAlive: false }) });
    server2 = new PusherServer({ ...APP2, host: '127.0.0.1', port: String(proxy.port), useTLS: false, agent: new Agent({ keepAlive: false }) });
    // Both nodes know each other before the cluster-wide queries.
    await until(async () => {
      const r = await server.get({ path: '/channels' }).catch(() => undefined);
      return r?.status === 200;
    }, { timeoutMs: 20_000, intervalMs: 200, what: 'the HTTP API' });
    await new Promise((r) => setTimeout(r, 5500)); // one hello round (node/cluster-calls.ts HELLO_MS)
  });

  after(async () => {
    receiver.close();
    for (const c of clients) c.disconnect();
    await proxy?.stop();
    await Promise.all(nodes.map((n) => n.stop()));
    files.cleanup();
  });

  function client(key = APP.key): Client {
    // Each app's back end signs for its own clients.
    const backEnd = (): PusherServer => (key === APP2.key ? server2 : server);
    const c = new PusherClient(key, {
      cluster: 'fanout',
      wsHost: '127.0.0.1',
      wsPort: proxy.port,
      forceTLS: false,
      enabledTransports: ['ws'],
      disableStats: true,
      channelAuthorization: {
        endpoint: '',
        transport: 'ajax',
        customHandler: ({ socketId, channelName }: { socketId: string; channelName: string }, cb: AuthCallback) => {
          const presence = channelName.startsWith('presence-') ? { user_id: (c as unknown as { who: string }).who, user_info: { name: (c as unknown as { who: string }).who.toUpperCase() } } : undefined;
          cb(null, backEnd().authorizeChannel(socketId, channelName, presence));
        },
      },
      userAuthentication: {
        endpoint: '',
        transport: 'ajax',
        customHandler: ({ socketId }: { socketId: string }, cb: AuthCallback) => cb(null, backEnd().authenticateUser(socketId, { id: (c as unknown as { who: string }).who })),
      },
    });
    clients.push(c);
    return c;
  }

  function as(who: string, key = APP.key): Client {
    const c = client(key);
    (c as unknown as { who: string }).who = who;
    return c;
  }

  async function connected(c: Client): Promise<void> {
    await until(() => c.connection.state === 'connected' && c.connection.socket_id !== undefined, { timeoutMs: 15_000, what: 'pusher-js connected' });
  }

  function subscribed(c: Client, channel: string): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const ch = c.subscribe(channel);
      ch.bind('pusher:subscription_succeeded', resolve);
      ch.bind('pusher:subscription_error', reject);
    });
  }

  function next(c: Client, channel: string, event: string): Promise<unknown> {
    return new Promise((resolve) => {
      const ch = c.channel(channel) ?? c.subscribe(channel);
      const handler = (data: unknown): void => {
        ch.unbind(event, handler);
        resolve(data);
      };
      ch.bind(event, handler);
    });
  }

  /** A signed request built here (not by the library), to send what the library refuses to. */
  async function signed(method: string, path: string, body: unknown, overrides: Record<string, string> = {}): Promise<{ status: number; text: string }> {
    const text = body === undefined ? '' : JSON.stringify(body);
    const query: Record<string, string> = { auth_key: APP.key, auth_timestamp: String(Math.floor(Date.now() / 1000)), auth_version: '1.0', ...(text ? { body_md5: createHash('md5').update(text).digest('hex') } : {}), ...overrides };
    const sorted = Object.keys(query).sort().map((k) => `${k}=${query[k]}`).join('&');
    const signature = overrides.auth_signature ?? createHmac('sha256', APP.secret).update(`${method}\n${path}\n${sorted}`).digest('hex');
    const res = await fetch(`http://127.0.0.1:${proxy.port}${path}?${sorted}&auth_signature=${signature}`, { method, ...(text ? { body: text, headers: { 'content-type': 'application/json' } } : {}) });
    return { status: res.status, text: await res.text() };
  }

  test('public and private channels across both nodes: trigger, batch, socket_id exclusion, client events to the others only', async () => {
    const [a, b] = [as('ann'), as('bob')];
    await Promise.all([connected(a), connected(b)]);
    await Promise.all([subscribed(a, 'news'), subscribed(b, 'news'), subscribed(a, 'private-chat'), subscribed(b, 'private-chat')]);

    const both = Promise.all([next(a, 'news', 'headline'), next(b, 'news', 'headline')]);
    await server.trigger('news', 'headline', { text: 'hello' });
    assert.deepEqual(await both, [{ text: 'hello' }, { text: 'hello' }]);

    // socket_id: everyone but that connection.
    let aGot = 0;
    a.channel('news').bind('excluded', () => aGot++);
    const bExcluded = next(b, 'news', 'excluded');
    await server.trigger('news', 'excluded', { n: 1 }, { socket_id: a.connection.socket_id });
    assert.deepEqual(await bExcluded, { n: 1 });

    const batch = Promise.all([next(a, 'news', 'one'), next(b, 'private-chat', 'two')]);
    await server.triggerBatch([
      { channel: 'news', name: 'one', data: { n: 1 } },
      { channel: 'private-chat', name: 'two', data: { n: 2 } },
    ]);
    assert.deepEqual(await batch, [{ n: 1 }, { n: 2 }]);

    // A client event reaches the other subscriber, never the sender.
    let echoed = 0;
    a.channel('private-chat').bind('client-typing', () => echoed++);
    const typing = next(b, 'private-chat', 'client-typing');
    assert.equal(a.channel('private-chat').trigger('client-typing', { who: 'ann' }), true);
    assert.deepEqual(await typing, { who: 'ann' });

    // A client event on a public channel gets Pusher's refusal.
    const refused = new Promise<{ data?: { message?: string } }>((resolve) => a.connection.bind('error', resolve));
    a.send_event('client-nope', { x: 1 }, 'news');
    assert.match(String((await refused).data?.message), /only supported on private and presence channels/);
    assert.equal(aGot, 0, 'the excluded socket got the event');
    assert.equal(echoed, 0, 'the sender got its own client event');
  });

  test('presence across nodes: members, member_added/removed per user, users and counts from the API', async () => {
    const [a, b] = [as('u1'), as('u2')];
    await Promise.all([connected(a), connected(b)]);
    await subscribed(a, 'presence-room');
    const added = next(a, 'presence-room', 'pusher:member_added');
    const joined = (await subscribed(b, 'presence-room')) as { count: number; me: { id: string } };
    assert.equal(joined.count, 2);
    assert.deepEqual(await added, { id: 'u2', info: { name: 'U2' } });

    const users = (await (await server.get({ path: '/channels/presence-room/users' })).json()) as { users: Array<{ id: string }> };
    assert.deepEqual(users.users.map((u) => u.id).sort(), ['u1', 'u2']);
    const info = (await (await server.get({ path: '/channels/presence-room', params: { info: 'user_count,subscription_count' } })).json()) as Record<string, unknown>;
    assert.deepEqual(info, { occupied: true, subscription_count: 2, user_count: 2 });
    const list = (await (await server.get({ path: '/channels', params: { filter_by_prefix: 'presence-', info: 'user_count' } })).json()) as { channels: Record<string, unknown> };
    assert.deepEqual(list.channels['presence-room'], { user_count: 2 });

    // A second connection of u2 adds no member; u2 leaves only when its last one goes.
    const b2 = as('u2');
    await connected(b2);
    let addedAgain = 0;
    a.channel('presence-room').bind('pusher:member_added', () => addedAgain++);
    await subscribed(b2, 'presence-room');
    const removed = next(a, 'presence-room', 'pusher:member_removed');
    b.disconnect();
    b2.disconnect();
    assert.deepEqual(await removed, { id: 'u2', info: { name: 'U2' } });
    assert.equal(addedAgain, 0);
  });

  test('cache channels replay the last event or say pusher:cache_miss', async () => {
    await server.trigger('cache-score', 'goal', { score: '1-0' });
    await server.trigger('cache-score', 'goal', { score: '2-0' });
    const c = as('fan');
    await connected(c);
    const last = next(c, 'cache-score', 'goal');
    const miss = next(c, 'cache-empty', 'pusher:cache_miss');
    c.subscribe('cache-score');
    c.subscribe('cache-empty');
    assert.deepEqual(await last, { score: '2-0' });
    await miss;
  });

  test('signin, sendToUser, then terminateUserConnections closes that user on whichever node', async () => {
    const c = as('signed-user');
    await connected(c);
    c.signin();
    await until(() => c.user.signinDonePromise !== null, { timeoutMs: 5000, what: 'signin to start' });
    await c.user.signinDonePromise;
    // sendToUser reaches the user's #server-to-user- channel, which pusher-js joins after signin.
    const direct = new Promise((resolve) => c.user.bind('note', resolve));
    await until(async () => {
      await server.sendToUser('signed-user', 'note', { hi: 1 });
      return Promise.race([direct.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 300))]);
    }, { timeoutMs: 10_000, what: 'sendToUser to arrive' });
    assert.deepEqual(await direct, { hi: 1 });

    // terminateUserConnections, seen on a plain socket signed in as another user (pusher-js, closed
    // by the server, would hold the test process for its socket's 30 s close timer).
    const raw = await connect(`ws://127.0.0.1:${proxy.port}/app/${APP.key}?protocol=7`);
    const hello = await raw.json<{ data: string }>((f) => f.event === 'pusher:connection_established');
    const socketId = (JSON.parse(hello.data) as { socket_id: string }).socket_id;
    raw.send(JSON.stringify({ event: 'pusher:signin', data: server.authenticateUser(socketId, { id: 'raw-user' }) }));
    await raw.json((f) => f.event === 'pusher:signin_success');
    await server.terminateUserConnections('raw-user');
    assert.equal(await raw.waitClose(10_000), 4009);
    assert.equal(c.connection.state, 'connected', 'another user was closed');
  });

  test("wrong requests get Pusher's answers", async () => {
    const bad = new PusherServer({ ...APP, secret: 'wrong', host: '127.0.0.1', port: String(proxy.port), useTLS: false, agent: new Agent({ keepAlive: false }) });
    await assert.rejects(bad.trigger('news', 'x', {}), (err: { status?: number }) => err.status === 401);
    const old = await signed('POST', `/apps/${APP.appId}/events`, { name: 'x', data: '{}', channel: 'news' }, { auth_timestamp: String(Math.floor(Date.now() / 1000) - 700) });
    assert.equal(old.status, 401);
    assert.match(old.text, /Timestamp expired/);
    await assert.rejects(server.trigger('news', 'big', 'x'.repeat(10 * 1024 + 1)), (err: { status?: number }) => err.status === 413);
    const many = await signed('POST', `/apps/${APP.appId}/events`, { name: 'x', data: '{}', channels: Array.from({ length: 101 }, (_, i) => `c${i}`) });
    assert.equal(many.status, 400);
    const longName = await signed('POST', `/apps/${APP.appId}/events`, { name: 'x', data: '{}', channel: 'c'.repeat(201) });
    assert.equal(longName.status, 400);

    // An unknown key, on a plain socket (what any Pusher client reads): pusher:error 4001, then the close 4001 (pusher-js does not retry 4000–4099).
    const stranger = await connect(`ws://127.0.0.1:${proxy.port}/app/no-such-key?protocol=7&client=js&version=8.6.0`);
    const error = await stranger.json<{ event: string; data: string }>((f) => f.event === 'pusher:error');
    assert.equal((JSON.parse(error.data) as { code: number }).code, 4001);
    assert.equal(await stranger.waitClose(10_000), 4001);
  });

  test("a presence channel takes Pusher's 100 users; the 101st gets a subscription_error, a known user's next connection still joins", async () => {
    const sockets: Array<Awaited<ReturnType<typeof connect>>> = [];
    const join = async (user: string): Promise<{ event: string; data: string }> => {
      const raw = await connect(`ws://127.0.0.1:${proxy.port}/app/${APP.key}?protocol=7`);
      sockets.push(raw);
      const hello = await raw.json<{ data: string }>((f) => f.event === 'pusher:connection_established');
      const socketId = (JSON.parse(hello.data) as { socket_id: string }).socket_id;
      const auth = server.authorizeChannel(socketId, 'presence-full', { user_id: user });
      raw.send(JSON.stringify({ event: 'pusher:subscribe', data: { channel: 'presence-full', ...auth } }));
      return raw.json<{ event: string; data: string }>((f) => f.channel === 'presence-full' && String(f.event).includes('subscription'), 10_000);
    };
    try {
      for (let i = 0; i < 100; i++) assert.equal((await join(`user${i}`)).event, 'pusher_internal:subscription_succeeded');
      const refused = await join('user100');
      assert.equal(refused.event, 'pusher:subscription_error');
      assert.equal((JSON.parse(refused.data) as { status: number }).status, 403);
      const again = await join('user7');
      assert.equal((JSON.parse(again.data) as { presence: { count: number } }).presence.count, 100);
    } finally {
      for (const s of sockets) s.close();
    }
  });

  test("two apps on one cluster are separate: same channel names, nothing crosses; one app's secret signs nothing of the other", async () => {
    const [one, two] = [as('one'), as('two', APP2.key)];
    await Promise.all([connected(one), connected(two)]);
    await Promise.all([subscribed(one, 'shared'), subscribed(two, 'shared'), subscribed(one, 'private-shared'), subscribed(two, 'private-shared')]);
    const got: string[] = [];
    for (const [who, c] of [['one', one], ['two', two]] as const) {
      for (const channel of ['shared', 'private-shared']) c.channel(channel).bind('hello', (data: { from: string }) => got.push(`${who} ${channel} from ${data.from}`));
    }
    // Each back end triggers on its own app; the other app's subscribers of the same names hear nothing.
    await server2.trigger(['shared', 'private-shared'], 'hello', { from: 'app-2' });
    await until(() => got.length >= 2, { timeoutMs: 10_000, what: "app-2's events" });
    await server.trigger(['shared', 'private-shared'], 'hello', { from: 'app-1' });
    await until(() => got.length >= 4, { timeoutMs: 10_000, what: "app-1's events" });
    // A client event stays in its app too.
    const typing = next(one, 'private-shared', 'client-typing');
    const other = as('one-bis');
    await connected(other);
    await subscribed(other, 'private-shared');
    other.channel('private-shared').trigger('client-typing', { app: 1 });
    await typing;
    await new Promise((r) => setTimeout(r, 500)); // a crossing event would be here by now
    assert.deepEqual(got.sort(), ['one private-shared from app-1', 'one shared from app-1', 'two private-shared from app-2', 'two shared from app-2']);
    let crossed = 0;
    two.channel('private-shared').bind('client-typing', () => crossed++);
    other.channel('private-shared').trigger('client-typing', { app: 1 });
    await next(one, 'private-shared', 'client-typing');
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(crossed, 0, "app-1's client event reached app-2");

    // Counts are per app, cluster-wide.
    const counts = async (s: PusherServer) => ((await (await s.get({ path: '/channels', params: { info: 'subscription_count' } })).json()) as { channels: Record<string, { subscription_count: number }> }).channels;
    assert.equal((await counts(server))['private-shared']?.subscription_count, 2);
    assert.equal((await counts(server2))['private-shared']?.subscription_count, 1);

    // App 1's secret (or key) signs nothing on app 2: the API answers 401, a subscription is refused.
    const forged = new PusherServer({ ...APP2, secret: APP.secret, host: '127.0.0.1', port: String(proxy.port), useTLS: false, agent: new Agent({ keepAlive: false }) });
    await assert.rejects(forged.trigger('shared', 'hello', { from: 'forged' }), (err: { status?: number }) => err.status === 401);
    const wrongKey = new PusherServer({ ...APP, appId: APP2.appId, host: '127.0.0.1', port: String(proxy.port), useTLS: false, agent: new Agent({ keepAlive: false }) });
    await assert.rejects(wrongKey.trigger('shared', 'hello', { from: 'forged' }), (err: { status?: number }) => err.status === 401);
    const raw = await connect(`ws://127.0.0.1:${proxy.port}/app/${APP2.key}?protocol=7`);
    try {
      const hello = await raw.json<{ data: string }>((f) => f.event === 'pusher:connection_established');
      const socketId = (JSON.parse(hello.data) as { socket_id: string }).socket_id;
      raw.send(JSON.stringify({ event: 'pusher:subscribe', data: { channel: 'private-shared', ...server.authorizeChannel(socketId, 'private-shared') } }));
      const answer = await raw.json<{ event: string; data: string }>((f) => f.channel === 'private-shared', 10_000);
      assert.equal(answer.event, 'pusher:subscription_error');
      assert.equal((JSON.parse(answer.data) as { status: number }).status, 401);
    } finally {
      raw.close();
    }
    assert.deepEqual(got.filter((g) => g.includes('forged')), []);

    if (withWebhooks) {
      // App 2's webhooks go to its own URL, signed with its own secret.
      await until(() => hooks.some((h) => h.url === '/pusher/webhook2'), { timeoutMs: 15_000, what: "app-2's webhook" });
      for (const h of hooks.filter((x) => x.url === '/pusher/webhook2')) {
        assert.equal(server2.webhook(h).isValid(), true);
        assert.equal(server.webhook(h).isValid(), false);
      }
      const events = hooks.filter((h) => h.url === '/pusher/webhook2').flatMap((h) => server2.webhook(h).getEvents() as unknown as Array<{ name: string; channel: string }>);
      assert.ok(events.some((e) => e.name === 'channel_occupied' && e.channel === 'private-shared'), JSON.stringify(events));
    }
  });

  // On Redis only: Kafka keeps no cluster-wide occupancy counts yet, and the node refuses --pusher-webhook there.
  if (withWebhooks) test("webhooks in Pusher's format, once per cluster, verified by the library's webhook()", async () => {
    const events = (): Array<Record<string, unknown>> =>
      hooks.filter((h) => h.url === '/pusher/webhook').flatMap((h) => {
        const hook = server.webhook(h);
        assert.equal(hook.isValid(), true, 'a webhook the library does not verify');
        return hook.getEvents() as unknown as Array<Record<string, unknown>>;
      });
    const mine = (): Array<Record<string, unknown>> => events().filter((e) => String(e.channel).includes('hooks'));
    const [a, b] = [as('wa'), as('wb')];
    await Promise.all([connected(a), connected(b)]);
    await subscribed(a, 'presence-hooks');
    await subscribed(b, 'presence-hooks');
    const typing = next(b, 'presence-hooks', 'client-typing');
    a.channel('presence-hooks').trigger('client-typing', { x: 1 });
    await typing;
    const miss = next(a, 'cache-hooks', 'pusher:cache_miss');
    a.subscribe('cache-hooks');
    await miss;
    a.disconnect();
    b.disconnect();
    await until(() => mine().filter((e) => e.name === 'channel_vacated').length >= 2, { timeoutMs: 15_000, what: 'both channels vacated' });
    await new Promise((r) => setTimeout(r, 1000)); // a duplicate from the other node would be here by now
    const seen = mine().map((e) => `${e.name} ${e.channel}${e.user_id ? ` ${e.user_id}` : ''}${e.event ? ` ${e.event} ${e.data} ${e.socket_id === undefined ? '' : 'socket'}` : ''}`);
    assert.deepEqual(seen.sort(), [
      'cache_miss cache-hooks',
      'channel_occupied cache-hooks',
      'channel_occupied presence-hooks',
      'channel_vacated cache-hooks',
      'channel_vacated presence-hooks',
      'client_event presence-hooks wa client-typing {"x":1} socket',
      'member_added presence-hooks wa',
      'member_added presence-hooks wb',
      'member_removed presence-hooks wa',
      'member_removed presence-hooks wb',
    ]);
  });
}
