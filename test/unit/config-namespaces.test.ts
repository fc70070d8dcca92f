/**
 * Namespaces (issue 27 part 2): parsing from a file and from code, errors by key path, and which
 * options apply to a channel (first match wins, top-level values otherwise, the pattern flags
 * as shorthand).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createConfig, loadServeConfig } from '../../src/config/load.js';
import { historyTtlOf, longestIdempotencyWindow, Namespaces, storedHistorySize, storedHistoryTtl } from '../../src/config/namespaces.js';
import { ConfigError } from '../../src/errors.js';
import { tempDir } from '../helpers/security.js';

const FILE = `
history-size: 50
history-ttl: 60
presence: [room:*]
subscribe-hook: http://127.0.0.1:4000/hooks/subscribe
publish-hook: http://127.0.0.1:4000/hooks/publish
namespaces:
  - pattern: chat:*
    history-size: 100
    presence: true
    join-leave: true
  - pattern: ticker:*
    history-size: 0
    history-ttl: 10
    cache: true
    recovery: false
    anonymous-subscribe: true
    subscribe-hook: false
  - pattern: notify:*
    client-publish: false
    idempotency-window: 3600
    publish-hook: https://app.example/publish
  - pattern: chat:quiet
    presence: true
    join-leave: false
`;

function fromFile(text: string, env: NodeJS.ProcessEnv = {}) {
  const tmp = tempDir();
  try {
    return loadServeConfig(['--config', tmp.file('fanout.yaml', text)], env);
  } finally {
    tmp.cleanup();
  }
}

test('a file lists namespaces under the flags\' own names; the first matching one applies, its options over the top level', () => {
  const config = fromFile(FILE);
  assert.equal(config.namespaces.length, 4);
  const ns = new Namespaces(config);
  assert.deepEqual(ns.resolve('chat:lobby'), {
    namespace: 'chat:*',
    historySize: 100,
    historyTtl: 60,
    presence: true,
    joinLeave: true,
    recovery: true,
    // With --subscribe-hook the back end decides what the patterns leave out: they leave out all.
    anonymousSubscribe: false,
    anonymousPublish: true,
    clientPublish: true,
    subscribeHook: 'http://127.0.0.1:4000/hooks/subscribe',
    publishHook: 'http://127.0.0.1:4000/hooks/publish',
    delta: false,
    idempotencyWindow: 300,
    cache: false,
  });
  const ticker = ns.resolve('ticker:EURUSD');
  assert.equal(ticker.namespace, 'ticker:*');
  assert.equal(ticker.historySize, 0);
  assert.equal(ticker.historyTtl, 10, 'the namespace\'s own history-ttl');
  assert.equal(ticker.cache, true);
  assert.equal(ns.resolve('chat:lobby').historyTtl, 60, 'the top-level history-ttl where the namespace says none');
  assert.equal(ticker.recovery, false);
  assert.equal(ticker.presence, false, 'presence off unless the namespace or --presence says');
  assert.equal(ticker.joinLeave, false, 'no join/leave without presence');
  assert.equal(ticker.subscribeHook, false, 'false skips the global hook');
  const notify = ns.resolve('notify:u1');
  assert.equal(notify.clientPublish, false);
  assert.equal(notify.idempotencyWindow, 3600, 'the namespace\'s idempotency-window over the top level\'s (default 300)');
  assert.equal(notify.publishHook, 'https://app.example/publish');
  // chat:* comes first, so chat:quiet never reaches its own namespace.
  assert.equal(ns.resolve('chat:quiet').namespace, 'chat:*');
  assert.equal(ns.resolve('chat:quiet').joinLeave, true);
});

test('a channel no namespace matches gets the top-level values, and the pattern flags keep working', () => {
  const ns = new Namespaces(fromFile(FILE));
  const room = ns.resolve('room:1');
  assert.equal(room.namespace, null);
  assert.equal(room.historySize, 50);
  assert.equal(room.historyTtl, 60);
  assert.equal(room.presence, true, '--presence room:* still gives presence');
  assert.equal(room.joinLeave, true, 'join/leave default with presence');
  const other = ns.resolve('misc');
  assert.equal(other.presence, false);
  assert.equal(other.recovery, true);
  assert.equal(other.clientPublish, true);
});

test('anonymous access: the namespace says, else the --anonymous-* patterns, else their defaults', () => {
  const ns = new Namespaces(
    createConfig({
      jwtSecret: 's',
      anonymousSubscribe: ['public:*'],
      namespaces: [
        { pattern: 'ticker:*', anonymousSubscribe: true },
        { pattern: 'public:secret', anonymousSubscribe: false },
      ],
    }),
  );
  assert.equal(ns.resolve('ticker:x').anonymousSubscribe, true);
  assert.equal(ns.resolve('public:secret').anonymousSubscribe, false);
  assert.equal(ns.resolve('public:news').anonymousSubscribe, true);
  assert.equal(ns.resolve('chat:x').anonymousSubscribe, false, 'closed by default with a JWT');
  assert.equal(ns.resolve('chat:x').anonymousPublish, false);
  // With no JWT and no connect hook the hub is open.
  assert.equal(new Namespaces(createConfig({})).resolve('chat:x').anonymousPublish, true);
});

test('bad namespaces stop with one line naming the key path in the file', () => {
  const cases: Array<[string, RegExp]> = [
    ['namespaces:\n  - pattern: a:*\n  - pattern: b:*\n    history-size: -1\n', /^invalid namespaces\[1\]\.history-size in \S+fanout\.yaml: expected at least 0, got -1$/],
    ['namespaces:\n  - history-size: 3\n', /^invalid namespaces\[0\]\.pattern in \S+: required: a channel pattern such as chat:\*$/],
    ['namespaces:\n  - pattern: chat room\n', /^invalid namespaces\[0\]\.pattern in \S+: a pattern is made of letters/],
    ['namespaces:\n  - pattern: a:*\n    histroy-size: 3\n', /^invalid namespaces\[0\]\.histroy-size in \S+: unknown option \(did you mean history-size\?\)$/],
    ['namespaces:\n  - pattern: a:*\n    presence: yes\n', /^invalid namespaces\[0\]\.presence in \S+: expected true or false, got "yes"$/],
    ['namespaces:\n  - pattern: a:*\n    subscribe-hook: true\n', /^invalid namespaces\[0\]\.subscribe-hook in \S+: expected an http:\/\/ or https:\/\/ URL, or false/],
    ['namespaces:\n  - pattern: a:*\n  - pattern: a:*\n', /^invalid namespaces\[1\]\.pattern in \S+: namespaces\[0\] has the same pattern and wins/],
    ['namespaces: chat:*\n', /^invalid namespaces in \S+: expected a list of namespaces/],
    ['namespaces:\n  - pattern: a:*\n    cache: yes\n', /^invalid namespaces\[0\]\.cache in \S+: expected true or false, got "yes"$/],
    ['namespaces:\n  - pattern: a:*\n    delta: true\n', /^invalid namespaces\[0\]\.delta in \S+: expected fossil \(the one delta encoding\), or false, got true$/],
    ['namespaces:\n  - pattern: a:*\n    delta: xdelta\n', /^invalid namespaces\[0\]\.delta in \S+: expected fossil \(the one delta encoding\), or false, got "xdelta"$/],
    ['namespaces:\n  - pattern: a:*\n    idempotency-window: 86401\n', /^invalid namespaces\[0\]\.idempotency-window in \S+: expected at most 86400, got 86401$/],
    ['namespaces:\n  - pattern: a:*\n    idempotency-window: 0\n', /^invalid namespaces\[0\]\.idempotency-window in \S+: expected at least 1, got 0$/],
    ['idempotency-window: 1.5\n', /^invalid idempotency-window in \S+: expected a whole number, got 1.5$/],
    ['namespaces:\n  - pattern: a:*\n    history-ttl: -5\n', /^invalid namespaces\[0\]\.history-ttl in \S+: expected 0 or more seconds/],
  ];
  for (const [text, expected] of cases) {
    assert.throws(
      () => fromFile(text),
      (err: unknown) => err instanceof ConfigError && expected.test(err.message) && !err.message.includes('\n'),
      text,
    );
  }
});

test('stores keep the largest history size of the top level and any namespace', () => {
  assert.equal(storedHistorySize(createConfig({ historySize: 10 })), 10);
  assert.equal(storedHistorySize(createConfig({ historySize: 10, namespaces: [{ pattern: 'a:*', historySize: 0 }, { pattern: 'b:*', historySize: 500 }] })), 500);
  assert.equal(storedHistorySize(createConfig({ historySize: 10, namespaces: [{ pattern: 'a:*', historySize: 3 }] })), 10);
  assert.equal(storedHistorySize(createConfig({ historySize: 0, namespaces: [{ pattern: 'a:*', historySize: 0, cache: true }] })), 1, 'a last-value namespace keeps its latest message');
});

test('history-ttl per namespace: stores keep the longest (0 when any is 0) and expire or serve each channel at its own', () => {
  assert.equal(storedHistoryTtl(createConfig({ historyTtl: 60 })), 60);
  assert.equal(storedHistoryTtl(createConfig({ historyTtl: 60, namespaces: [{ pattern: 'a:*', historyTtl: 5 }, { pattern: 'b:*', historyTtl: 3600 }] })), 3600);
  assert.equal(storedHistoryTtl(createConfig({ historyTtl: 60, namespaces: [{ pattern: 'a:*', historyTtl: 0 }] })), 0);
  assert.equal(historyTtlOf(createConfig({ historyTtl: 60, namespaces: [{ pattern: 'a:*', historySize: 5 }] })), undefined, 'no namespace sets one: every channel has --history-ttl');
  const ttlOf = historyTtlOf(createConfig({ historyTtl: 60, namespaces: [{ pattern: 'a:x', presence: true }, { pattern: 'a:*', historyTtl: 5 }] }))!;
  assert.deepEqual([ttlOf('a:y'), ttlOf('a:x'), ttlOf('b:y')], [5, 60, 60], 'the first matching namespace decides, even when it sets no ttl');
});

test('--idempotency-window is the top level every namespace inherits; a store with one window keeps the longest', () => {
  const config = fromFile(FILE, { FANOUT_IDEMPOTENCY_WINDOW: '120' });
  assert.equal(config.idempotencyWindow, 120);
  const ns = new Namespaces(config);
  assert.equal(ns.resolve('chat:x').idempotencyWindow, 120, 'inherited');
  assert.equal(ns.resolve('notify:x').idempotencyWindow, 3600);
  assert.equal(longestIdempotencyWindow(config), 3600);
  assert.equal(createConfig({}).idempotencyWindow, 300, 'default 300 s');
});

test('namespaces have no flag and no variable: only a file or createConfig sets them', () => {
  assert.throws(() => loadServeConfig(['--namespaces', 'x'], {}), /invalid --namespaces: unknown option/);
  assert.deepEqual(loadServeConfig([], { FANOUT_NAMESPACES: '[]' }).namespaces, []);
  const config = createConfig({ namespaces: [{ pattern: 'chat:*', historySize: 5 }] });
  assert.equal(config.namespaces[0]?.historySize, 5);
  assert.throws(
    () => createConfig({ namespaces: [{ pattern: 'chat:*', historySiz: 5 } as never] }),
    (err: unknown) => err instanceof ConfigError && err.message === 'invalid namespaces[0].historySiz: unknown option (did you mean historySize?)',
  );
});
