// The Pusher protocol in headless Chromium (docs/pusher.md): two `fanout serve` nodes over Redis
// behind HAProxy, and an app of the kind a Laravel team runs: its own origin serves the page and
// the auth endpoints (signed with the `pusher` library), the page loads pusher-js and Laravel Echo
// from npm's browser builds. Alice joins a presence channel with Echo and listens to an event the
// back end triggers; Bob, in another page with plain pusher-js, signs in, joins the same channel,
// whispers to Alice (a client event) and reads a cache channel's last event.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Agent, createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import { after, before, test } from 'node:test';
import PusherServer from 'pusher';
import type { TestPage } from '../helpers/browser.js';
import { startBrowserCluster, type BrowserCluster } from '../helpers/browser-cluster.js';

const APP = { appId: 'e2e-app', key: 'e2e-key', secret: 'e2e-secret' };
const WAIT = 30_000;
const require = createRequire(import.meta.url);
const PUSHER_JS = readFileSync(require.resolve('pusher-js/dist/web/pusher.min.js'), 'utf8');
const ECHO_JS = readFileSync(require.resolve('pusher-js').replace(/pusher-js[\\/].*$/, 'laravel-echo/dist/echo.iife.js'), 'utf8');

let cluster: BrowserCluster;
let app: Server;
let server: PusherServer;

/** The page: pusher-js and Echo from their npm builds, connected through HAProxy. */
function page(proxyPort: number): string {
  return `<!doctype html><meta charset="utf-8"><title>pusher e2e</title>
<script src="/pusher.js"></script><script src="/echo.js"></script>
<script>
  const user = new URLSearchParams(location.search).get('user');
  window.options = { cluster: 'fanout', wsHost: location.hostname, wsPort: ${proxyPort}, forceTLS: false, enabledTransports: ['ws'], disableStats: true,
    channelAuthorization: { endpoint: '/pusher/auth', transport: 'ajax', params: { user } },
    userAuthentication: { endpoint: '/pusher/user-auth', transport: 'ajax', params: { user } } };
  window.seen = [];
</script>`;
}

before(async () => {
  cluster = await startBrowserCluster('pusher', ['--pusher-app-id', APP.appId, '--pusher-key', APP.key, '--pusher-secret', APP.secret, '--allowed-origins', '*'], WAIT);
  server = new PusherServer({ ...APP, host: '127.0.0.1', port: String(cluster.proxy.port), useTLS: false, agent: new Agent({ keepAlive: false }) });
  // The app's origin: its page, the libraries, and the auth endpoints pusher-js posts to.
  app = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname === '/pusher.js' || url.pathname === '/echo.js') {
      res.writeHead(200, { 'content-type': 'text/javascript' });
      return res.end(url.pathname === '/pusher.js' ? PUSHER_JS : ECHO_JS);
    }
    if (req.method === 'POST' && url.pathname.startsWith('/pusher/')) {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        const form = new URLSearchParams(body);
        const user = form.get('user') ?? '';
        const socketId = form.get('socket_id') ?? '';
        const channel = form.get('channel_name') ?? '';
        const answer =
          url.pathname === '/pusher/user-auth'
            ? server.authenticateUser(socketId, { id: user })
            : server.authorizeChannel(socketId, channel, channel.startsWith('presence-') ? { user_id: user, user_info: { name: user } } : undefined);
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(answer));
      });
      return;
    }
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end(page(cluster.proxy.port));
  });
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
});

after(async () => {
  app?.close();
  await cluster?.close();
});

async function open(user: string): Promise<TestPage> {
  return cluster.browser.open(`http://127.0.0.1:${(app.address() as AddressInfo).port}/?user=${user}`);
}

test('Laravel Echo joins a presence channel and hears an event; pusher-js signs in, whispers and reads a cache channel', { timeout: 90_000 }, async () => {
  await server.trigger('cache-latest', 'price', { eur: 42 });
  const alice = await open('alice');
  await alice.page.evaluate(() => {
    const w = window as unknown as Record<string, any>;
    // Echo finds pusher-js as window.Pusher (its browser build sets it).
    const echo = new w.Echo.default({ broadcaster: 'pusher', key: 'e2e-key', ...w.options, authEndpoint: '/pusher/auth', auth: { params: { user: 'alice' } } });
    echo
      .join('room')
      .here((users: Array<{ name: string }>) => w.seen.push(`here ${users.map((u) => u.name).join(',')}`))
      .joining((u: { name: string }) => w.seen.push(`joining ${u.name}`))
      .listen('.shipped', (e: { order: number }) => w.seen.push(`shipped ${e.order}`))
      .listenForWhisper('typing', (e: { who: string }) => w.seen.push(`typing ${e.who}`));
  });
  await alice.page.waitForFunction(() => (window as any).seen.includes('here alice'), undefined, { timeout: WAIT });

  const bob = await open('bob');
  await bob.page.evaluate(() => {
    const w = window as unknown as Record<string, any>;
    const pusher = new w.Pusher('e2e-key', w.options);
    w.pusher = pusher;
    pusher.signin();
    pusher.user.signinDonePromise?.then(() => w.seen.push('signed in'));
    pusher.subscribe('cache-latest').bind('price', (e: { eur: number }) => w.seen.push(`price ${e.eur}`));
    const room = pusher.subscribe('presence-room');
    room.bind('pusher:subscription_succeeded', (members: { count: number }) => {
      w.seen.push(`members ${members.count}`);
      room.trigger('client-typing', { who: 'bob' });
    });
  });
  await bob.page.waitForFunction(() => ['signed in', 'price 42', 'members 2'].every((s) => (window as any).seen.includes(s)), undefined, { timeout: WAIT });
  await alice.page.waitForFunction(() => ['joining bob', 'typing bob'].every((s) => (window as any).seen.includes(s)), undefined, { timeout: WAIT });

  await server.trigger('presence-room', 'shipped', { order: 7 });
  await alice.page.waitForFunction(() => (window as any).seen.includes('shipped 7'), undefined, { timeout: WAIT });
  assert.deepEqual(alice.errors, []);
  assert.deepEqual(bob.errors, []);
});
