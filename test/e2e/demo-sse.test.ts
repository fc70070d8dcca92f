// A browser behind a proxy that refuses WebSockets (issue 29): headless Chromium loads the demo
// page through an HAProxy test config that denies every request with `Upgrade`, with two
// `fanout serve` nodes behind it in roundrobin (so the page's stream and its POSTs land on
// different nodes). The SDK falls back to SSE by itself, and the page chats with a page on a
// normal WebSocket through the generated config: messages both ways, presence, and recovery after
// the node holding the SSE session is killed (SIGKILL): every message once, in order.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import type { Page } from 'playwright-core';
import { startHaproxy, type RunningHaproxy } from '../../harness/haproxy.js';
import { screenshot } from '../helpers/browser.js';
import { startBrowserCluster, type BrowserCluster } from '../helpers/browser-cluster.js';

const WAIT = 30_000;
let cluster: BrowserCluster;
let noWebSockets: RunningHaproxy;

before(async () => {
  cluster = await startBrowserCluster('ssechat', ['--presence', 'chat:*', '--drain-delay', '0', '--drain-timeout', '0'], WAIT);
  noWebSockets = await startHaproxy(
    cluster.nodes.map((n) => n.port),
    { balance: 'roundrobin', frontendRules: ['http-request deny deny_status 403 if { hdr(upgrade) -m found }'] },
  );
});
after(async () => {
  await noWebSockets?.stop();
  await cluster?.close();
});

async function say(page: Page, text: string): Promise<void> {
  await page.fill('#chatMessage', text);
  await page.press('#chatMessage', 'Enter');
}

async function texts(page: Page): Promise<string[]> {
  return page.$$eval('#chat .msg:not(.event) .text', (els) => els.map((el) => el.textContent ?? ''));
}

async function shows(page: Page, want: readonly string[]): Promise<void> {
  await page.waitForFunction((w) => {
    const seen = new Set(Array.from(document.querySelectorAll('#chat .msg .text'), (el) => el.textContent));
    return w.every((t) => seen.has(t));
  }, want, { timeout: WAIT });
}

async function connectedOver(page: Page): Promise<{ node: string; transport: string }> {
  await page.waitForSelector('#state[data-state="connected"]', { timeout: WAIT });
  return { node: (await page.textContent('#node'))!, transport: (await page.textContent('#transport'))! };
}

test('behind a proxy that refuses WebSockets the demo page chats over SSE with a WebSocket page, presence and recovery after a node kill', async () => {
  const room = `sse-${randomBytes(3).toString('hex')}`;
  const url = (port: number, name: string) => `http://127.0.0.1:${port}/ws?channel=${room}&name=${name}`;
  const sse = await cluster.browser.open(url(noWebSockets.port, 'ann'));
  const ws = await cluster.browser.open(url(cluster.proxy.port, 'bob'));
  const annOn = await connectedOver(sse.page);
  const bobOn = await connectedOver(ws.page);
  assert.equal(annOn.transport, 'sse', 'the page fell back to SSE by itself');
  assert.equal(bobOn.transport, 'websocket');

  for (const p of [sse, ws]) {
    await p.page.waitForFunction(
      () => Array.from(document.querySelectorAll('#presence li'), (li) => (li.textContent ?? '').replace(' (you)', '')).sort().join() === 'ann,bob',
      undefined,
      { timeout: WAIT },
    );
  }
  await say(sse.page, 'hello over sse');
  await shows(ws.page, ['hello over sse']);
  await say(ws.page, 'hello over websocket');
  await shows(sse.page, ['hello over sse', 'hello over websocket']);

  // Kill the node holding the SSE session; bob (moved too if he was there) keeps talking.
  const victim = cluster.nodes.findIndex((n) => n.id === annOn.node);
  assert.ok(victim >= 0, `ann's node ${annOn.node} is one of ours`);
  await cluster.nodes[victim]!.stop('SIGKILL');
  const meanwhile = Array.from({ length: 4 }, (_, i) => `while ${annOn.node} is down ${i + 1}`);
  await connectedOver(ws.page);
  for (const text of meanwhile) await say(ws.page, text);
  await sse.page.waitForFunction(
    (dead) => document.querySelector('#state')?.getAttribute('data-state') === 'connected' && document.querySelector('#node')?.textContent !== dead,
    annOn.node,
    { timeout: WAIT },
  );
  assert.equal(await sse.page.textContent('#transport'), 'sse');
  await say(sse.page, 'ann is back');
  const expected = ['hello over sse', 'hello over websocket', ...meanwhile, 'ann is back'];
  for (const p of [sse, ws]) {
    await shows(p.page, expected);
    assert.deepEqual(await texts(p.page), expected, 'every message once, in the order sent');
  }
  await screenshot(sse.page, 'demo-sse');
  // Chromium logs the refused WebSocket openings itself; anything else would be a page bug.
  assert.deepEqual(sse.errors.filter((e) => !/WebSocket connection to .* failed|Failed to load resource|ERR_/.test(e)), [], 'no page errors');
});
