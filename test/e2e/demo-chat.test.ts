// The demo chat in headless Chromium against a real cluster: two `fanout serve` processes over
// Redis, HAProxy in front. Pages served through HAProxy and straight from each node join one
// room; what is typed in one shows in all, with who sent it and who is present. Then the node
// serving a HAProxy page is killed (SIGKILL): that page reconnects through HAProxy to the other
// node and shows every message sent meanwhile, none twice; the page served by the killed node
// itself comes back when the node restarts on its port. A screenshot goes to test-artifacts/.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import type { Page } from 'playwright-core';
import { forkFanoutServe, waitReadyPort } from '../../harness/fanout-process.js';
import { screenshot, type TestPage } from '../helpers/browser.js';
import { startBrowserCluster, type BrowserCluster } from '../helpers/browser-cluster.js';

const WAIT = 30_000;
let cluster: BrowserCluster;
/** The pages the test opened, so that a failed wait can say what each one showed. */
const opened: TestPage[] = [];

before(async () => {
  cluster = await startBrowserCluster('chat', ['--presence', 'chat:*', '--drain-delay', '0', '--drain-timeout', '0'], WAIT);
});
after(() => cluster?.close());

/** What a person sees in the chat log: [who, text, offset] of every chat line (joins left out). */
async function lines(page: Page): Promise<Array<[string, string, number]>> {
  return page.$$eval('#chat .msg:not(.event)', (els) =>
    els.map((el) => [el.querySelector('.who')?.textContent ?? '', el.querySelector('.text')?.textContent ?? '', Number((el as HTMLElement).dataset.offset)] as [string, string, number]),
  );
}

async function say(page: Page, text: string): Promise<void> {
  await page.fill('#chatMessage', text);
  await page.press('#chatMessage', 'Enter');
}

/** What a page shows, for a wait that timed out: its state, node, presence, notices and chat. */
async function pageState(page: Page): Promise<string> {
  return page
    .evaluate(() => {
      const texts = (selector: string) => Array.from(document.querySelectorAll(selector), (el) => (el.textContent ?? '').trim());
      return JSON.stringify({
        state: document.querySelector('#state')?.getAttribute('data-state'),
        node: document.querySelector('#node')?.textContent,
        presence: texts('#presence li'),
        notices: texts('#notice, #roomStatus, #presenceNote').filter((t) => t !== ''),
        chat: texts('#chat .msg'),
      });
    })
    .catch((err: Error) => `(page unreadable: ${err.message})`);
}

/** Awaits a page wait; when it fails, the error says what every page of the test showed then. */
async function explained(what: string, wait: Promise<unknown>): Promise<void> {
  try {
    await wait;
  } catch (err) {
    const states = await Promise.all(opened.map(async (p, i) => `  page ${i}: ${await pageState(p.page)}`));
    throw new Error(`${what}: ${(err as Error).message.split('\n')[0]}\n${states.join('\n')}`);
  }
}

/** Waits until the page's chat shows every text in `texts`. */
async function shows(page: Page, texts: readonly string[]): Promise<void> {
  await explained(`waiting for ${JSON.stringify(texts)}`, page.waitForFunction(
    (want) => {
      const seen = new Set(Array.from(document.querySelectorAll("#chat .msg .text"), (el) => el.textContent));
      return want.every((t) => seen.has(t));
    },
    texts,
    { timeout: WAIT },
  ));
}

async function nodeOf(page: Page): Promise<string> {
  await page.waitForSelector('#state[data-state="connected"]', { timeout: WAIT });
  return (await page.textContent('#node'))!;
}

test('a chat across HAProxy and both nodes survives a node being killed: every message shown once, in order', async () => {
  const room = `e2e-${randomBytes(3).toString('hex')}`;
  const url = (port: number, name: string) => `http://127.0.0.1:${port}/ws?channel=${room}&name=${name}`;
  const viaProxy: TestPage[] = [];
  for (const name of ['ann', 'bob', 'cy']) viaProxy.push(await cluster.browser.open(url(cluster.proxy.port, name)));
  const direct = [await cluster.browser.open(url(cluster.nodes[0]!.port, 'dee')), await cluster.browser.open(url(cluster.nodes[1]!.port, 'eve'))];
  const pages = [...viaProxy, ...direct];
  opened.push(...pages);
  const nodeIds = await Promise.all(pages.map((p) => nodeOf(p.page)));
  assert.equal(nodeIds[3], 'chat1');
  assert.equal(nodeIds[4], 'chat2');

  // Everyone sees everyone: presence lists the five pages by name (learnt from their joins), on both nodes.
  for (const p of pages) {
    await explained('waiting for the five names in presence', p.page.waitForFunction(
      () => Array.from(document.querySelectorAll('#presence li'), (li) => (li.textContent ?? '').replace(' (you)', '')).sort().join() === 'ann,bob,cy,dee,eve',
      undefined,
      { timeout: WAIT },
    ));
  }
  assert.equal(await pages[1]!.page.textContent('#presence li:has-text("(you)")'), 'bob (you)');

  // Each line waits for the previous one, so "the order sent" is one order for everybody.
  await say(direct[0]!.page, 'hello from dee');
  await shows(viaProxy[1]!.page, ['hello from dee']);
  await say(viaProxy[1]!.page, 'bob here');
  for (const p of pages) await shows(p.page, ['hello from dee', 'bob here']);
  const firstLine = (await lines(pages[2]!.page)).find((l) => l[1] === 'hello from dee');
  assert.equal(firstLine?.[0], 'dee', 'each line says who sent it');

  // Kill the node that serves the first HAProxy page; a page on the other node keeps talking.
  const victim = nodeIds[0] === 'chat1' ? 0 : 1;
  const victimId = `chat${victim + 1}`;
  const survivorId = `chat${2 - victim}`;
  const victimPort = cluster.nodes[victim]!.port;
  const talker = direct[1 - victim]!;
  const moved = viaProxy.filter((_, i) => nodeIds[i] === victimId);
  await cluster.nodes[victim]!.stop('SIGKILL');
  const meanwhile = Array.from({ length: 5 }, (_, i) => `while ${victimId} is down ${i + 1}`);
  for (const text of meanwhile) await say(talker.page, text);
  await shows(talker.page, meanwhile);

  for (const p of moved) {
    await explained(`waiting for a moved page to be served by ${survivorId}`, p.page.waitForFunction((id) => document.querySelector('#state')?.getAttribute('data-state') === 'connected' && document.querySelector('#node')?.textContent === id, survivorId, { timeout: WAIT }));
  }
  await say(moved[0]!.page, 'back on the other node');
  const expected = ['hello from dee', 'bob here', ...meanwhile, 'back on the other node'];
  for (const p of viaProxy) {
    await shows(p.page, expected);
    const seen = await lines(p.page);
    assert.deepEqual(seen.map((l) => l[1]), expected, 'every message once, in the order sent');
    const offsets = seen.map((l) => l[2]);
    assert.deepEqual(offsets, [...offsets].sort((a, b) => a - b));
    assert.equal(new Set(offsets).size, offsets.length, 'no offset twice');
  }
  // Presence follows: the moved pages are listed under their names again (their old connections dropped).
  await explained('waiting for presence to list ann, bob, cy and eve once each after the move', moved[0]!.page.waitForFunction(
    () => {
      const names = Array.from(document.querySelectorAll('#presence li'), (li) => (li.textContent ?? '').replace(' (you)', ''));
      return ['ann', 'bob', 'cy', 'eve'].every((n) => names.filter((x) => x === n).length === 1) && !names.some((n) => n.startsWith('guest'));
    },
    undefined,
    { timeout: WAIT },
  ));
  await screenshot(moved[0]!.page, 'demo-chat');

  // The page served by the killed node itself comes back when the node restarts on its port.
  const stranded = direct[victim]!;
  assert.notEqual(await stranded.page.getAttribute('#state', 'data-state'), 'closed', 'it keeps trying');
  cluster.nodes[victim] = await forkFanoutServe([...cluster.nodeArgs(victim + 1), '--port', String(victimPort)]);
  await waitReadyPort(victimPort, WAIT);
  await explained(`waiting for the stranded page to be served by ${victimId} again`, stranded.page.waitForFunction((id) => document.querySelector('#state')?.getAttribute('data-state') === 'connected' && document.querySelector('#node')?.textContent === id, victimId, { timeout: WAIT }));
  await say(stranded.page, 'dee is back');
  for (const p of pages) {
    await shows(p.page, [...expected, 'dee is back']);
    assert.deepEqual((await lines(p.page)).map((l) => l[1]), [...expected, 'dee is back'], 'the same log on every page');
  }
  // Failed reconnect attempts are logged by Chromium itself; anything else would be a page bug.
  for (const p of pages) assert.deepEqual(p.errors.filter((e) => !/WebSocket connection to .* failed|Failed to load resource/.test(e)), [], 'no page errors');
});
