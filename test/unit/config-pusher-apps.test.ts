/**
 * `pusher-apps:` in the config file (issue 30 part 1, docs/pusher.md#several-apps): each app's
 * keys under the flags' names without `pusher-`, errors named by their path in the file, ids and
 * keys unique over the list and the flags' app (one more app), limits falling back to the
 * --pusher-* flags, and `config print` / `config check` with every secret masked.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parse } from 'yaml';
import { createConfig, loadServeConfig } from '../../src/config/load.js';
import { effectiveOptions, effectiveYaml, MASK } from '../../src/config/print.js';
import { ConfigError } from '../../src/errors.js';
import { tempDir } from '../helpers/security.js';

const APPS = `
pusher-max-event-bytes: 2048
pusher-apps:
  - id: app-2
    key: key-2
    secret: secret-two
    webhook: http://hooks:pw2@127.0.0.1:4000/pusher/2
    client-event-rate: 5
  - id: app-3
    key: key-3
    secret: secret-three
    max-event-bytes: 4096
`;

function withFile<T>(text: string, body: (path: string) => T): T {
  const tmp = tempDir();
  try {
    return body(tmp.file('fanout.yaml', text));
  } finally {
    tmp.cleanup();
  }
}

/** The one-line message loading `text` (with `flags`) throws. */
function refusal(text: string, flags: string[] = []): string {
  return withFile(text, (file) => {
    try {
      loadServeConfig(['--config', file, ...flags], {});
    } catch (err) {
      assert.ok(err instanceof ConfigError, String(err));
      assert.ok(!err.message.includes('\n'), err.message);
      return err.message.replace(file, 'fanout.yaml');
    }
    assert.fail('loaded');
  });
}

test("apps of the file and the flags' app are all served, each with its limits or the --pusher-* ones", () => {
  const config = withFile(APPS, (file) => loadServeConfig(['--config', file, '--pusher-app-id', 'app-1', '--pusher-key', 'key-1', '--pusher-secret', 'secret-one'], {}));
  assert.deepEqual(config.pusherApps, [
    { id: 'app-1', key: 'key-1', secret: 'secret-one', webhook: undefined, maxEventBytes: 2048, clientEventRate: 10 },
    { id: 'app-2', key: 'key-2', secret: 'secret-two', webhook: 'http://hooks:pw2@127.0.0.1:4000/pusher/2', maxEventBytes: 2048, clientEventRate: 5 },
    { id: 'app-3', key: 'key-3', secret: 'secret-three', webhook: undefined, maxEventBytes: 4096, clientEventRate: 10 },
  ]);
  // The list alone is enough; createConfig takes it in camelCase.
  assert.equal(withFile(APPS, (file) => loadServeConfig(['--config', file], {})).pusherApps.length, 2);
  const coded = createConfig({ pusherApps: [{ id: 'a', key: 'k', secret: 's', maxEventBytes: 100 }] });
  assert.deepEqual(coded.pusherApps, [{ id: 'a', key: 'k', secret: 's', webhook: undefined, maxEventBytes: 100, clientEventRate: 10 }]);
  assert.deepEqual(createConfig().pusherApps, [], 'no app: no Pusher endpoint');
});

test('a wrong app is named by its path in the file, the secret never echoed', () => {
  const app = (fields: string) => `pusher-apps:\n  - id: a\n    key: ka\n    secret: sa\n  - ${fields}\n`;
  assert.equal(refusal(app('id: b\n    key: "bad key"\n    secret: sb')), 'invalid pusher-apps[1].key in fanout.yaml: expected 1–128 letters, digits, . _ or -, got "bad key"');
  assert.equal(refusal(app('id: b\n    secret: sb')), "invalid pusher-apps[1].key in fanout.yaml: required: the app's key");
  assert.equal(refusal(app('id: b\n    key: kb\n    secret: ""')), 'invalid pusher-apps[1].secret in fanout.yaml: expected a non-empty secret');
  assert.equal(refusal(app('id: a\n    key: kb\n    secret: sb')), 'invalid pusher-apps[1].id in fanout.yaml: pusher-apps[0] has the same id, got "a"');
  assert.equal(refusal(app('id: b\n    key: ka\n    secret: sb')), 'invalid pusher-apps[1].key in fanout.yaml: pusher-apps[0] has the same key, got "ka"');
  assert.equal(refusal(app('id: b\n    key: kb\n    secret: sb\n    max-event-bytes: 0')), 'invalid pusher-apps[1].max-event-bytes in fanout.yaml: expected at least 1, got 0');
  assert.equal(refusal(app('id: b\n    key: kb\n    secret: sb\n    webhook: ftp://x')), 'invalid pusher-apps[1].webhook in fanout.yaml: expected an http:// or https:// URL, got "ftp://x"');
  assert.equal(refusal(app('id: b\n    key: kb\n    secret: sb\n    app-secret: x')), 'invalid pusher-apps[1].app-secret in fanout.yaml: unknown option');
  assert.equal(refusal('pusher-apps: {id: a}\n'), 'invalid pusher-apps in fanout.yaml: expected a list of apps (- id: app-1, key: …, secret: …), got {"id":"a"}');
  assert.equal(refusal('pusher-apps: {id: a, secret: s3cret}\n'), 'invalid pusher-apps in fanout.yaml: expected a list of apps (- id: app-1, key: …, secret: …)', 'a value holding a secret is not echoed');
  assert.ok(!refusal(app('id: b\n    key: kb\n    secret: 42')).includes('42'), 'a secret is never echoed');
  // The flags' app is one more app: its id and key must differ from the list's.
  const flags = (id: string, key: string) => ['--pusher-app-id', id, '--pusher-key', key, '--pusher-secret', 'x'];
  assert.equal(refusal(app('id: b\n    key: kb\n    secret: sb'), flags('b', 'k0')), "invalid --pusher-app-id: pusher-apps[1] has the same id; the flags' app is one more app, beside the list's");
  assert.equal(refusal(app('id: b\n    key: kb\n    secret: sb'), flags('c', 'ka')), "invalid --pusher-key: pusher-apps[0] has the same key; the flags' app is one more app, beside the list's");
  // --pusher-webhook is the flags' app's: the list's apps have their own.
  assert.match(refusal(app('id: b\n    key: kb\n    secret: sb'), ['--pusher-webhook', 'http://127.0.0.1:1/h']), /^invalid --pusher-webhook: needs --pusher-app-id/);
  // No flag, no variable: pusher-apps is a file's.
  assert.throws(() => loadServeConfig(['--pusher-apps', 'x'], {}), /invalid --pusher-apps: unknown option/);
});

test('config print masks every app\'s secret and its webhook password; what it prints loads again', () => {
  withFile(APPS, (file) => {
    const text = effectiveYaml(effectiveOptions(['--config', file, '--pusher-app-id', 'app-1', '--pusher-key', 'key-1', '--pusher-secret', 'secret-one'], {}));
    for (const secret of ['secret-one', 'secret-two', 'secret-three', 'pw2']) assert.ok(!text.includes(secret), `${secret} printed:\n${text}`);
    const printed = parse(text) as Record<string, unknown>;
    assert.equal(printed['pusher-secret'], MASK);
    assert.deepEqual(printed['pusher-apps'], [
      { id: 'app-2', key: 'key-2', secret: MASK, webhook: `http://hooks:${MASK}@127.0.0.1:4000/pusher/2`, 'client-event-rate': 5 },
      { id: 'app-3', key: 'key-3', secret: MASK, 'max-event-bytes': 4096 },
    ]);
    assert.match(text, /# \S+fanout\.yaml\npusher-apps:/);
    // Fed back (the masks are secrets like any other), it gives the same apps.
    const again = withFile(text, (printedFile) => loadServeConfig(['--config', printedFile], {}));
    assert.deepEqual(again.pusherApps.map((a) => [a.id, a.key]), [['app-1', 'key-1'], ['app-2', 'key-2'], ['app-3', 'key-3']]);
  });
});
