/**
 * The example back end (examples/hooks-backend/server.mjs) with a real node: log in, connect with
 * the session cookie, keep private channels to their owner, trim and refuse messages.
 */
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { forkFanoutServe, forkListening, type ServerProcess } from '../../harness/fanout-process.js';
import { closeAll, connect, refusedStatus, type TestClient } from '../helpers/ws-client.js';

/** This file is dist/test/integration/…; the example is not compiled. */
const EXAMPLE = fileURLToPath(new URL('../../../examples/hooks-backend/server.mjs', import.meta.url));
const SECRET = 'example-secret';

let backend: ServerProcess;
let node: ServerProcess;
const clients: TestClient[] = [];

before(async () => {
  backend = await forkListening(EXAMPLE, [], { env: { PORT: '0', FANOUT_HOOK_SECRET: SECRET } });
  const base = `http://127.0.0.1:${backend.port}`;
  node = await forkFanoutServe([
    '--presence', 'chat:*', '--drain-delay', '0', '--hook-secret', SECRET,
    '--connect-hook', `${base}/hooks/connect`,
    '--subscribe-hook', `${base}/hooks/subscribe`,
    '--publish-hook', `${base}/hooks/publish`,
  ]);
});

after(async () => {
  closeAll(clients);
  await node?.stop();
  await backend?.stop();
});

/** Logs in as `name` and returns the session cookie. */
async function login(name: string): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${backend.port}/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ name }).toString(),
    redirect: 'manual',
  });
  assert.equal(res.status, 303);
  assert.match(res.headers.get('location') ?? '', /\/ws\?channel=lobby&name=/);
  const cookie = (res.headers.get('set-cookie') ?? '').split(';')[0]!;
  assert.match(cookie, /^app_session=/);
  return cookie;
}

/** Connects with `cookie`, joins chat:lobby and returns the client with its user (from presence). */
async function enter(cookie: string): Promise<{ client: TestClient; user: string }> {
  const client = await connect(`ws://127.0.0.1:${node.port}/ws/v1`, { headers: { cookie } });
  clients.push(client);
  const { client: id } = await client.json<{ client: string }>((f) => f['type'] === 'connected');
  client.sendJson({ type: 'subscribe', channel: 'chat:lobby', id: 1 });
  const join = await client.json<{ user: string }>((f) => f['type'] === 'join' && f['client'] === id);
  return { client, user: join.user };
}

test('the login page is served, and without a session the upgrade is refused with 401', async () => {
  const page = await fetch(`http://127.0.0.1:${backend.port}/`);
  assert.match(await page.text(), /<form method="post" action="\/login">/);
  assert.equal(await refusedStatus(`ws://127.0.0.1:${node.port}/ws/v1`), 401);
  assert.equal(await refusedStatus(`ws://127.0.0.1:${node.port}/ws/v1`, { headers: { cookie: 'app_session=forged' } }), 401);
});

test('a session: messages are trimmed and carry the session\'s name, empty ones are refused, private channels stay with their owner', async () => {
  const alice = await enter(await login('Alice'));
  const bob = await enter(await login('Bob'));
  assert.match(alice.user, /^alice-/);

  bob.client.sendJson({ type: 'publish', channel: 'chat:lobby', data: { name: 'Alice (not really)', text: '  hi all  ' }, id: 2 });
  const message = await alice.client.json<{ data: Record<string, unknown> }>((f) => f['type'] === 'message');
  assert.equal(message.data['text'], 'hi all');
  assert.equal(message.data['name'], 'Bob', 'the back end names the sender');
  bob.client.sendJson({ type: 'publish', channel: 'chat:lobby', data: { text: '   ' }, id: 3 });
  assert.equal((await bob.client.json((f) => f['type'] === 'error' && f['id'] === 3))['code'], 'forbidden');

  alice.client.sendJson({ type: 'subscribe', channel: `private:${alice.user}`, id: 4 });
  const mine = await alice.client.json((f) => f['type'] === 'subscribed' && f['id'] === 4);
  assert.deepEqual(mine['data'], { owner: alice.user, name: 'Alice' });
  bob.client.sendJson({ type: 'subscribe', channel: `private:${alice.user}`, id: 5 });
  assert.equal((await bob.client.json((f) => f['type'] === 'error' && f['id'] === 5))['code'], 'forbidden');
});
