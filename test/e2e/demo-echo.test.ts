// The classic echo form in a real browser: pages served through HAProxy and directly by two
// nodes (Redis between them); text typed into one page's #message appears in every page's
// #output as "Received: <text>", once.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { forkFanoutServe, type ServerProcess } from '../../harness/fanout-process.js';
import { type RunningHaproxy, startHaproxy } from '../../harness/haproxy.js';
import { REDIS_URL } from '../helpers/brokers.js';
import { launchBrowser, screenshot, type TestBrowser, type TestPage } from '../helpers/browser.js';
import { uniquePrefix } from '../helpers/nodes.js';

let nodes: ServerProcess[] = [];
let proxy: RunningHaproxy | undefined;
let browser: TestBrowser | undefined;

before(async () => {
  const busPrefix = uniquePrefix('e2e-echo');
  nodes = await Promise.all([1, 2].map((i) => forkFanoutServe(['--bus', REDIS_URL, '--bus-prefix', busPrefix, '--node-id', `echo${i}`])));
  proxy = await startHaproxy(nodes.map((n) => n.port));
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await proxy?.stop();
  await Promise.all(nodes.map((n) => n.stop()));
});

async function outputLines(p: TestPage): Promise<string[]> {
  return p.page.locator('#output > div').allTextContents();
}

test('a message typed in one page shows as "Received: <text>" in every page, through HAProxy and straight from both nodes', async () => {
  const urls = [`http://127.0.0.1:${proxy!.port}/ws`, `http://127.0.0.1:${nodes[0]!.port}/ws`, `http://127.0.0.1:${nodes[1]!.port}/ws`];
  const pages: TestPage[] = [];
  for (const url of urls) pages.push(await browser!.open(url));
  for (const p of pages) await p.page.waitForSelector('#status[data-state="connected"]', { timeout: 15_000 });

  await pages[1]!.page.fill('#message', 'hello from node one');
  await pages[1]!.page.click('#sendButton');
  await pages[0]!.page.fill('#message', 'and from haproxy <b>not bold</b>');
  await pages[0]!.page.press('#message', 'Enter');

  const expected = ['Received: and from haproxy <b>not bold</b>', 'Received: hello from node one'];
  for (const p of pages) {
    await p.page.waitForFunction(() => document.querySelectorAll('#output > div').length >= 2, undefined, { timeout: 15_000 });
    assert.deepEqual((await outputLines(p)).sort(), expected);
    assert.equal(await p.page.locator('#output b').count(), 0, 'text is shown as text, never as HTML');
  }
  assert.equal(await pages[0]!.page.inputValue('#message'), '', 'the box is cleared after sending');
  await screenshot(pages[0]!.page, 'demo-echo');
});
