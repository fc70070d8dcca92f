/**
 * The session's POST sequence on its own (node/sse-sequence.ts): each `?seq=` runs once, the same
 * seq again gets the remembered verdict, an older one runs nothing, one that skips ahead is
 * refused with `out_of_order`, and POSTs without a seq run as they come.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { PostVerdict } from '../../src/node/sse-relay.js';
import { parseSeq, PostSequence } from '../../src/node/sse-sequence.js';

/** A session's side: the batches it ran, and the verdict it gives the next one. */
function session(): { runs: string[]; next: PostVerdict; run: (batch: string) => () => PostVerdict } {
  const state = {
    runs: [] as string[],
    next: { status: 204 } as PostVerdict,
    run: (batch: string) => () => {
      state.runs.push(batch);
      return state.next;
    },
  };
  return state;
}

test('each seq runs once: the same seq again gets the remembered verdict and runs nothing', () => {
  const s = session();
  const sequence = new PostSequence();
  assert.deepEqual(sequence.take(1, s.run('one')), { status: 204 });
  assert.deepEqual(sequence.take(1, s.run('one again')), { status: 204 }, 'the resend of a batch that ran');
  assert.deepEqual(sequence.take(2, s.run('two')), { status: 204 });
  // A batch the session refused is refused again, not run again.
  s.next = { status: 400, error: 'bad_request', message: 'an empty array' };
  assert.deepEqual(sequence.take(3, s.run('three')), s.next);
  s.next = { status: 204 };
  assert.deepEqual(sequence.take(3, s.run('three again')), { status: 400, error: 'bad_request', message: 'an empty array' });
  assert.deepEqual(s.runs, ['one', 'two', 'three']);
});

test('an older seq runs nothing; one that skips ahead is refused with out_of_order and leaves the sequence as it was', () => {
  const s = session();
  const sequence = new PostSequence();
  sequence.take(1, s.run('one'));
  sequence.take(2, s.run('two'));
  assert.deepEqual(sequence.take(1, s.run('a stale copy of one')), { status: 204 }, 'a stale relay: taken before');
  const gap = sequence.take(4, s.run('four'));
  assert.equal(gap.status, 409);
  assert.equal((gap as { error: string }).error, 'out_of_order');
  assert.match((gap as { message: string }).message, /expected 3/);
  assert.equal(sequence.take(3, s.run('three')).status, 204, 'the next one still runs');
  assert.deepEqual(s.runs, ['one', 'two', 'three']);
  // A first POST must be 1.
  assert.equal(new PostSequence().take(2, s.run('never')).status, 409);
  assert.deepEqual(s.runs, ['one', 'two', 'three']);
});

test('POSTs without a seq run every time and leave the sequence alone', () => {
  const s = session();
  const sequence = new PostSequence();
  sequence.take(undefined, s.run('a'));
  sequence.take(undefined, s.run('a'));
  sequence.take(1, s.run('one'));
  sequence.take(undefined, s.run('b'));
  sequence.take(1, s.run('one again'));
  sequence.take(2, s.run('two'));
  assert.deepEqual(s.runs, ['a', 'a', 'one', 'b', 'two']);
});

test('?seq= is a positive integer JavaScript holds exactly, in plain decimal', () => {
  assert.equal(parseSeq('1'), 1);
  assert.equal(parseSeq('9007199254740991'), Number.MAX_SAFE_INTEGER);
  for (const bad of ['', '0', '-1', '01', '1.5', '1e3', ' 1', 'abc', '9007199254740992', '12345678901234567']) {
    assert.equal(parseSeq(bad), undefined, JSON.stringify(bad));
  }
});
