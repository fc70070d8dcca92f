// The demo page in headless Chromium against the example back end (examples/hooks-backend/server.mjs)
// and a real node with every hook and the webhook: a person logs in on the back end's form, its
// session cookie admits the page's WebSocket through the connect hook, and the chat works — the
// publish hook trims what is typed and names the sender, presence shows the same names (the
// connect hook's meta), and the back end hears the room fill and the people arrive through the webhook. A screenshot goes to test-artifacts/.
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import type { Page } from 'playwright-core';
import { forkFanoutServe, forkListening, type ServerProcess } from '../../harness/fanout-process.js';
import { freePort } from '../../harness/ports.js';
import { until } from '../../harness/wait.js';
import { launchBrowser, screenshot, type TestBrowser } from '../helpers/browser.js';

/** This file is dist/test/e2e/…; the example is not compiled. */
const EXAMPLE = fileURLToPath(new URL('../../../examples/hooks-backend/server.mjs', import.meta.url));
const WAIT = 30_000;

let backend: ServerProcess;
let node: ServerProcess;
let browser: TestBrowser;

before(async () => {
  const nodePort = await freePort();
  backend = await forkListening(EXAMPLE, [], { env: { PORT: '0', FANOUT_HOOK_SECRET: 'e2e-secret', FANOUT_URL: `http://127.0.0.1:${nodePort}` } });
  const base = `http://127.0.0.1:${backend.port}`;
  node = await forkFanoutServe([
    '--port', String(nodePort), '--presence', 'chat:*', '--drain-delay', '0', '--hook-secret', 'e2e-secret',
    '--connect-hook', `${base}/hooks/connect`, '--subscribe-hook', `${base}/hooks/subscribe`, '--publish-hook', `${base}/hooks/publish`,
    '--webhook', `${base}/hooks/webhook`, '--webhook-secret', 'e2e-secret',
  ]);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await node?.stop();
  await backend?.stop();
});

/** Logs in on the back end's form as `name` and lands on the demo chat, connected. */
async function logIn(name: string): Promise<Page> {
  const { page } = await browser.open(`http://127.0.0.1:${backend.port}/`);
  await page.fill('input[name="name"]', name);
  await Promise.all([page.waitForURL(/\/ws\?channel=lobby/, { timeout: WAIT }), page.click('form[action="/login"] button')]);
  await page.waitForSelector('#state[data-state="connected"]', { timeout: WAIT });
  return page;
}

test('log in on the example back end: the cookie admits the demo page, the chat works through the hooks, the webhook hears it', async () => {
  const ann = await logIn('Ann');
  const ben = await logIn('Ben');
  await ben.fill('#chatMessage', '   hello from ben   ');
  await ben.press('#chatMessage', 'Enter');
  await ann.waitForFunction(() => Array.from(document.querySelectorAll('#chat .msg .text'), (el) => el.textContent).includes('hello from ben'), undefined, { timeout: WAIT });
  const line = await ann.$$eval('#chat .msg:not(.event)', (els) =>
    els.map((el) => [el.querySelector('.who')?.textContent ?? '', el.querySelector('.text')?.textContent ?? '']),
  );
  assert.ok(line.some(([who, text]) => who === 'Ben' && text === 'hello from ben'), `Ann sees Ben's trimmed line: ${JSON.stringify(line)}`);
  // Presence shows the same display names as the messages: the connect hook's meta ({name}), not the user ids.
  const present = (): Promise<string[]> => ann.$$eval('#presence li', (els) => els.map((el) => el.textContent ?? '').sort());
  await ann.waitForFunction(() => document.querySelectorAll('#presence li').length === 2, undefined, { timeout: WAIT });
  assert.deepEqual(await present(), ['Ann (you)', 'Ben']);
  await screenshot(ann, 'demo-hooks-backend');

  // Without a session the back end refuses the page's WebSocket (401): the page asks the node's
  // upgrade check why, says the back end refused and that you need to log in there, and stops.
  const { page: stranger } = await browser.open(`http://127.0.0.1:${node.port}/ws?channel=lobby&name=x`);
  await stranger.waitForSelector('#state[data-state="closed"]', { timeout: WAIT });
  const said = (await stranger.textContent('#notice'))!;
  assert.match(said, /^The back end refused the connection: log in first/, said);
  assert.match(said, /log in there/);
  assert.equal(await stranger.textContent('#state'), 'refused');
  // The echo box learns the same from its own check.
  await stranger.waitForSelector('#status[data-state="closed"]', { timeout: WAIT });
  assert.equal(await stranger.textContent('#status'), 'refused');
  assert.match((await stranger.textContent('#echoNote'))!, /the back end refused the connection/);
  await screenshot(stranger, 'demo-hooks-refused');
  // The SDK itself, in the browser: the refused upgrade's status and code reach the app, and it stops.
  const seen = await stranger.evaluate(async () => {
    const sdk = '/ws/client/index.js'; // the SDK as the node serves it to pages
    const { FanoutClient } = (await import(sdk)) as typeof import('../../client/index.js');
    const client = new FanoutClient({ url: '/ws/v1', backoff: { initial: 10, max: 10 } });
    const drops: unknown[] = [];
    client.on('disconnected', (info) => drops.push(info));
    const closed = new Promise<{ reason: string; refusal?: unknown }>((resolve) => client.on('closed', resolve));
    void client.connect();
    return { closed: await closed, drops, state: client.state };
  });
  assert.equal(seen.state, 'closed');
  assert.equal(seen.drops.length, 1, 'no retry after the 401');
  const refusal = seen.closed.refusal as { status: number; code: string; message: string; by: string };
  assert.deepEqual({ ...refusal, message: undefined }, { status: 401, code: 'unauthorized', by: 'connect_hook', message: undefined });
  assert.match(refusal.message, /^the back end refused the connection: log in first at http:\/\/127\.0\.0\.1:\d+\/$/);

  const webhooks = (): string[] => backend.output().split('\n').filter((l) => l.startsWith('{"webhook"'));
  await until(() => webhooks().filter((l) => l.includes('"member_added"')).length >= 2, { timeoutMs: WAIT, what: 'the webhook to log both members' });
  assert.equal(webhooks().filter((l) => l.includes('"channel_occupied"') && l.includes('chat:lobby')).length, 1);
});
