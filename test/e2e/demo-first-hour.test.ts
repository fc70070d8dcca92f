// The demo page as a new user meets it, in headless Chromium: two tabs through HAProxy (the
// generated config) are served by two different nodes; reloading does not post "joined" again;
// no internal offsets on screen; a node that requires a token says so instead of retrying, and
// with ?token= both the chat and the echo box get in; the hint's token command, run as printed,
// gives a token that can use the rooms; a refused subscribe stays on screen when a send fails too.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import type { Page } from 'playwright-core';
import { screenshot } from '../helpers/browser.js';
import { startBrowserCluster, type BrowserCluster } from '../helpers/browser-cluster.js';
import { spawnSync } from 'node:child_process';
import { FANOUT_MAIN, forkFanoutServe } from '../../harness/fanout-process.js';
import { SECRET, sign } from '../helpers/security.js';

const WAIT = 30_000;
let cluster: BrowserCluster;

before(async () => {
  cluster = await startBrowserCluster('first', ['--presence', 'chat:*', '--drain-delay', '0'], WAIT);
});
after(() => cluster?.close());

async function connectedNode(page: Page): Promise<string> {
  await page.waitForSelector('#state[data-state="connected"]', { timeout: WAIT });
  await page.waitForSelector('#status[data-state="connected"]', { timeout: WAIT });
  return (await page.textContent('#node'))!;
}

test('two tabs through HAProxy show two different nodes', async () => {
  const room = `tabs-${randomBytes(3).toString('hex')}`;
  const first = await cluster.browser.open(`http://127.0.0.1:${cluster.proxy.port}/ws?channel=${room}&name=ann`);
  const a = await connectedNode(first.page);
  const second = await cluster.browser.open(`http://127.0.0.1:${cluster.proxy.port}/ws?channel=${room}&name=bob`);
  const b = await connectedNode(second.page);
  assert.notEqual(a, b, `both tabs on ${a}`);
  assert.deepEqual([a, b].sort(), ['first1', 'first2']);
  // The room field says which characters a room may have, and a name outside them is not joined.
  assert.match((await first.page.textContent('#roomRule'))!, /letters, digits and _ \. @ = \+ -/);
  await first.page.fill('#channel', 'my room!');
  await first.page.click('#join');
  assert.equal(await first.page.$eval('#channel', (el) => (el as HTMLInputElement).validity.patternMismatch), true);
  assert.equal(await first.page.title(), `#${room} — Fanout`, 'still in the room it was in');
});

test('reloading the page and joining again post "joined" once; the log shows no offsets', async () => {
  const room = `reload-${randomBytes(3).toString('hex')}`;
  const { page } = await cluster.browser.open(`http://127.0.0.1:${cluster.proxy.port}/ws?channel=${room}&name=cy`);
  await connectedNode(page);
  const joins = () => page.$$eval('#chat .msg.event', (els) => els.map((el) => el.textContent));
  await page.waitForFunction(() => document.querySelectorAll('#chat .msg.event').length === 1, undefined, { timeout: WAIT });
  for (let i = 0; i < 3; i++) {
    await page.reload({ waitUntil: 'load' });
    await connectedNode(page);
  }
  await page.click('#join');
  await page.fill('#chatMessage', 'hello after reloads');
  await page.press('#chatMessage', 'Enter');
  await page.waitForFunction(() => Array.from(document.querySelectorAll('#chat .msg .text')).some((el) => el.textContent === 'hello after reloads'), undefined, { timeout: WAIT });
  assert.equal((await joins()).length, 1, `one "joined" line, got ${JSON.stringify(await joins())}`);
  // The name is remembered without ?name= too.
  await page.goto(`http://127.0.0.1:${cluster.proxy.port}/ws?channel=${room}`, { waitUntil: 'load' });
  await connectedNode(page);
  assert.equal(await page.inputValue('#name'), 'cy');
  await page.waitForFunction(() => Array.from(document.querySelectorAll('#chat .msg .text')).some((el) => el.textContent === 'hello after reloads'), undefined, { timeout: WAIT });
  assert.equal((await joins()).length, 1);
  const text = await page.textContent('#chatSection');
  assert.doesNotMatch(text ?? '', /#\d+/, 'no internal offsets on screen');
  assert.doesNotMatch(text ?? '', /\/ws\/v1|channel protocol/, 'no jargon on screen');
  await screenshot(page, 'demo-first-hour');
});

test('a node that requires a token: the page says how to pass one and does not retry; with ?token= chat and echo both connect', async () => {
  const node = await forkFanoutServe(['--jwt-secret', SECRET, '--anonymous-subscribe', 'chat:*', '--anonymous-publish', 'chat:*']);
  try {
    const opened: string[] = [];
    const bare = await cluster.browser.open(`http://127.0.0.1:${node.port}/ws`);
    bare.page.on('websocket', (ws) => opened.push(ws.url()));
    await bare.page.waitForFunction(() => /requires a token/.test(document.querySelector('#notice')?.textContent ?? ''), undefined, { timeout: WAIT });
    assert.match((await bare.page.textContent('#notice'))!, /\?token=/);
    assert.equal(await bare.page.textContent('#status'), 'needs a token');
    // Nothing hammers the node: no socket is even tried.
    await bare.page.waitForTimeout(1500);
    assert.deepEqual(opened, []);

    const token = await sign({}, { sub: 'dana' });
    const withToken = await cluster.browser.open(`http://127.0.0.1:${node.port}/ws?token=${token}&name=dana`);
    await connectedNode(withToken.page);
    await withToken.page.fill('#message', 'echo with a token');
    await withToken.page.press('#message', 'Enter');
    await withToken.page.waitForFunction(() => document.querySelector('#output')?.textContent?.includes('Received: echo with a token'), undefined, { timeout: WAIT });

    const refused = await cluster.browser.open(`http://127.0.0.1:${node.port}/ws?token=not-a-valid-token`);
    await refused.page.waitForFunction(() => /refused the token/.test(document.querySelector('#notice')?.textContent ?? ''), undefined, { timeout: WAIT });
    assert.equal(await refused.page.getAttribute('#state', 'data-state'), 'closed', 'it stops trying');
  } finally {
    await node.stop();
  }
});

/** Runs `fanout token …` as the page's hint prints it (with the secret and name filled in); the token is its last line. */
function runHint(hint: string, secret: string, name: string): string {
  const command = /npx fanout (token .*'chat:\*')/.exec(hint)?.[1];
  assert.ok(command, `a token command in the hint: ${hint}`);
  const args = command.replace('YOUR_SECRET', secret).replace('yourname', name).split(' ').map((a) => a.replace(/^'(.*)'$/, '$1'));
  const run = spawnSync(process.execPath, [FANOUT_MAIN, ...args], { encoding: 'utf8' });
  assert.equal(run.status, 0, run.stderr);
  return run.stdout.trim().split('\n').at(-1)!;
}

test("a --jwt-secret node: the hint's token works in the rooms; a token without them shows the refused room, and a failed send does not hide it", async () => {
  const node = await forkFanoutServe(['--jwt-secret', SECRET, '--drain-delay', '0']);
  try {
    const base = `http://127.0.0.1:${node.port}/ws`;
    const bare = await cluster.browser.open(`${base}?channel=hint`);
    await bare.page.waitForFunction(() => /requires a token/.test(document.querySelector('#notice')?.textContent ?? ''), undefined, { timeout: WAIT });
    const token = runHint((await bare.page.textContent('#notice'))!, SECRET, 'erin');

    const erin = await cluster.browser.open(`${base}?channel=hint&name=erin&token=${token}`);
    await connectedNode(erin.page);
    await erin.page.fill('#chatMessage', 'the hint works');
    await erin.page.press('#chatMessage', 'Enter');
    await erin.page.waitForFunction(() => Array.from(document.querySelectorAll('#chat .msg .text'), (el) => el.textContent).includes('the hint works'), undefined, { timeout: WAIT });
    assert.equal(await erin.page.textContent('#roomStatus'), '');
    assert.equal(await erin.page.textContent('#sendStatus'), '');

    // The old hint's token (no channels): it connects, but may not join or send.
    const bare2 = await sign({}, { sub: 'frank' });
    const frank = await cluster.browser.open(`${base}?channel=hint&name=frank&token=${bare2}`);
    await connectedNode(frank.page);
    await frank.page.waitForFunction(() => /You may not join hint/.test(document.querySelector('#roomStatus')?.textContent ?? ''), undefined, { timeout: WAIT });
    assert.match((await frank.page.textContent('#roomStatus'))!, /--channels 'chat:\*'/);
    await frank.page.fill('#chatMessage', 'let me in');
    await frank.page.press('#chatMessage', 'Enter');
    await frank.page.waitForFunction(() => /Not sent \(forbidden\)/.test(document.querySelector('#sendStatus')?.textContent ?? ''), undefined, { timeout: WAIT });
    assert.match((await frank.page.textContent('#roomStatus'))!, /You may not join hint/, 'the refused subscribe is still shown');
    await screenshot(frank.page, 'demo-refused-room');
  } finally {
    await node.stop();
  }
});
