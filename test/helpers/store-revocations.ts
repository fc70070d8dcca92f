/**
 * The revocation store's part of the store conformance suite (test/helpers/store-conformance.ts):
 * what `RevocationStore` promises in src/stores/store.ts, at the store interface, with stores built
 * as the node builds them playing two nodes of a cluster.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { RevocationEntry } from '../../src/stores/store.js';
import { until } from '../../harness/wait.js';
import { uniquePrefix } from './nodes.js';
import type { StoreHarness } from './store-harnesses.js';
import { closeOpened, open } from './store-suite.js';

const byKey = (list: readonly RevocationEntry[]): string[] => list.map((e) => `${e.kind}:${e.id}:${e.until}${e.kind === 'user' ? `:${e.issuedBefore}` : ''}`).sort();

export function defineRevocations(h: StoreHarness): void {
  before(() => h.setup());
  after(async () => {
    await closeOpened();
    await h.teardown();
  });

  test('an entry added on one node is listed on every node; the latest add of a key wins', async () => {
    const [a, b] = await open(h.spec(), 2);
    const id = uniquePrefix('jti');
    const until = Math.floor(Date.now() / 1000) + 600;
    await a!.stores.revocations.add({ kind: 'token', id, until });
    await b!.stores.revocations.add({ kind: 'user', id: `${id}-user`, issuedBefore: until - 700, until });
    for (const node of [a!, b!]) {
      const mine = (await node.stores.revocations.list()).filter((e) => e.id.startsWith(id));
      assert.deepEqual(byKey(mine), [`token:${id}:${until}`, `user:${id}-user:${until}:${until - 700}`]);
    }
    await b!.stores.revocations.add({ kind: 'token', id, until: until + 60 });
    const again = (await a!.stores.revocations.list()).filter((e) => e.id === id);
    assert.deepEqual(byKey(again), [`token:${id}:${until + 60}`]);
  });

  test('an entry is not listed once its until has passed, and the store drops it', async () => {
    const [a, b] = await open(h.spec(), 2);
    const id = uniquePrefix('short');
    const expiresAt = Date.now() / 1000 + 1.5;
    await a!.stores.revocations.add({ kind: 'token', id, until: expiresAt });
    assert.ok((await b!.stores.revocations.list()).some((e) => e.id === id), 'listed before its until');
    await until(async () => !(await b!.stores.revocations.list()).some((e) => e.id === id), { timeoutMs: 10_000, intervalMs: 200, what: 'the entry to expire' });
    assert.ok(Date.now() / 1000 >= expiresAt, 'not dropped before its until');
    // Another add prunes expired entries; the expired one is still not listed anywhere.
    await b!.stores.revocations.add({ kind: 'token', id: `${id}-next`, until: expiresAt + 600 });
    assert.ok(!(await a!.stores.revocations.list()).some((e) => e.id === id));
  });
}
