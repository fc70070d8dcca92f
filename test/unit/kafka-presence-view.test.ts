/**
 * The Kafka presence view (brokers/kafka/presence-view.ts) fed records by hand: what it lists,
 * which marker counts, and which node reports a swept client departed.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { entryKey, nodeKey, PresenceView } from '../../src/brokers/kafka/presence-view.js';

const json = (v: unknown): Buffer => Buffer.from(JSON.stringify(v));
const beat = (inc: string): Buffer => json({ inc });
const entry = (channel: string, client: string, node: string, inc: string, user: string | null = null): [string, Buffer] => [entryKey(channel, client, inc), json({ channel, client, user, node, inc })];
const all = (): boolean => true;

test('entries are listed per channel, once per client, and a tombstone removes one', () => {
  const view = new PresenceView('a');
  view.apply(nodeKey('a'), beat('1'), undefined, 0);
  view.apply(...entry('room', 'c1', 'a', '1', 'ann'), undefined, 0);
  view.apply(...entry('room', 'c2', 'a', '1'), undefined, 0);
  view.apply(...entry('other', 'c3', 'a', '1'), undefined, 0);
  assert.deepEqual(view.list('room', all, 10), [{ client: 'c1', user: 'ann' }, { client: 'c2', user: null }]);
  assert.equal(view.list('room', all, 1).length, 1);
  const change = view.apply(entryKey('room', 'c1', '1'), null, undefined, 0);
  assert.deepEqual(change, { type: 'entry-removed', key: entryKey('room', 'c1', '1') });
  assert.deepEqual(view.list('room', all, 10), [{ client: 'c2', user: null }]);
  // A tombstone of nothing changes nothing; garbage is ignored.
  assert.equal(view.apply(entryKey('room', 'zz', '1'), null, 'a', 0), undefined);
  assert.equal(view.apply('p\0x', Buffer.from('not json'), undefined, 0), undefined);
  assert.equal(view.size, 2);
});

test('the first dead marker of an incarnation counts; a stale heartbeat does not revive it; a new incarnation does', () => {
  const view = new PresenceView('a');
  view.apply(nodeKey('v'), beat('x'), undefined, 1);
  assert.deepEqual(view.apply(nodeKey('v'), json({ dead: 'x' }), undefined, 2), { type: 'swept', node: 'v', inc: 'x' });
  // A second marker (another sweeper) and a late heartbeat of the dead incarnation change nothing.
  assert.equal(view.apply(nodeKey('v'), json({ dead: 'x' }), undefined, 3), undefined);
  assert.equal(view.apply(nodeKey('v'), beat('x'), undefined, 4), undefined);
  assert.deepEqual(view.nodes.get('v'), { inc: 'x', dead: true, seenAt: 2 });
  // The node registers again: alive, and a marker of its old incarnation is stale.
  view.apply(nodeKey('v'), beat('y'), undefined, 5);
  assert.equal(view.apply(nodeKey('v'), json({ dead: 'x' }), undefined, 6), undefined);
  assert.deepEqual(view.nodes.get('v'), { inc: 'y', dead: false, seenAt: 5 });
});

test('a swept entry is reported departed by the view of the node that swept it, once, whichever tombstone comes first', () => {
  const views = { a: new PresenceView('a'), b: new PresenceView('b'), v: new PresenceView('v') };
  const log: Array<[string, Buffer | null, string | undefined]> = [
    [nodeKey('v'), beat('x'), undefined],
    [...entry('room', 'c1', 'v', 'x'), undefined],
    [nodeKey('v'), json({ dead: 'x' }), undefined],
    // Both a and b swept (their views disagreed on who sweeps): b's tombstone is first in the log.
    [entryKey('room', 'c1', 'x'), null, 'b'],
    [entryKey('room', 'c1', 'x'), null, 'a'],
  ];
  const reports: string[] = [];
  for (const [name, view] of Object.entries(views)) {
    for (const [key, value, swept] of log) {
      const change = view.apply(key, value, swept, 0);
      if (change?.type === 'departed') reports.push(`${name}:${change.entry.client}`);
      if (change?.type === 'swept' && change.node === name) reports.push(`${name}:swept`);
    }
  }
  // v hears of it twice (the marker, then its entry swept by b); the store acts on the first only.
  assert.deepEqual(reports, ['b:c1', 'v:swept', 'v:swept']);
});

test('a node sees its own current entry swept by another node as being swept itself', () => {
  const view = new PresenceView('v');
  view.apply(nodeKey('v'), beat('x'), undefined, 0);
  view.apply(...entry('room', 'c1', 'v', 'x'), undefined, 0);
  assert.deepEqual(view.apply(entryKey('room', 'c1', 'x'), null, 'w', 0), { type: 'swept', node: 'v', inc: 'x' });
  // Its key removed by another node while it was alive: the same.
  assert.deepEqual(view.apply(nodeKey('v'), null, undefined, 0), { type: 'swept', node: 'v', inc: 'x' });
});

test('entriesOf skips the kept incarnation; nodesWithEntries forgets a node whose entries are gone', () => {
  const view = new PresenceView('a');
  view.apply(...entry('room', 'c1', 'v', 'old'), undefined, 7);
  view.apply(...entry('room', 'c2', 'v', 'new'), undefined, 8);
  assert.deepEqual(view.entriesOf('v', 'new', 10).map((e) => e.client), ['c1']);
  assert.deepEqual(view.entriesOf('v', null, 1).length, 1);
  assert.deepEqual([...view.nodesWithEntries()], [['v', 8]]);
  view.apply(entryKey('room', 'c1', 'old'), null, undefined, 9);
  view.apply(entryKey('room', 'c2', 'new'), null, undefined, 9);
  assert.deepEqual([...view.nodesWithEntries()], []);
});
