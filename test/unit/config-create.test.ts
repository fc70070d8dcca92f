/**
 * createConfig from plain JavaScript (issue 26 item 6): it checks at run time what its type says.
 * An unknown key or a value of the wrong type throws a ConfigError naming the key, in one line.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createConfig, type ConfigInput } from '../../src/index.js';
import { ConfigError } from '../../src/errors.js';

/** `options` as plain JavaScript would pass them: no compile-time check stands in the way. */
function fromJs(options: Record<string, unknown>): unknown {
  try {
    return createConfig(options as ConfigInput);
  } catch (err) {
    return err;
  }
}

function assertRefused(options: Record<string, unknown>, flag: string, message: RegExp): void {
  const err = fromJs(options);
  assert.ok(err instanceof ConfigError, `${JSON.stringify(options)}: expected a ConfigError, got ${String(err)}`);
  assert.equal(err.flag, flag, JSON.stringify(options));
  assert.match(err.message, message, JSON.stringify(options));
  assert.ok(!err.message.includes('\n'), err.message);
}

test('an unknown key throws, naming the key as written and the option it was probably meant to be', () => {
  assertRefused({ presense: 'chat:*' }, 'presense', /^invalid presense: unknown option \(did you mean presence\?\)$/);
  assertRefused({ histroySize: 5 }, 'histroySize', /did you mean historySize\?/);
  assertRefused({ 'max-payload': 5 }, 'max-payload', /did you mean maxPayload\?/);
  assertRefused({ somethingElse: true }, 'somethingElse', /^invalid somethingElse: unknown option$/);
});

test('an array where a string or a number belongs throws, naming the key and the value', () => {
  assertRefused({ host: ['a', 'b'] }, '--host', /^invalid --host: expected a string, got \["a","b"\]$/);
  assertRefused({ port: [3000] }, '--port', /expected a number, got \[3000\]/);
  assertRefused({ logLevel: ['info'] }, '--log-level', /expected one of fatal/);
  assertRefused({ bus: ['redis://127.0.0.1:6379'] }, '--bus', /expected memory, redis:/);
});

test('a boolean, an object or a number where another type belongs throws', () => {
  assertRefused({ port: true }, '--port', /expected a number, got true/);
  assertRefused({ hookTimeout: false }, '--hook-timeout', /expected a number of seconds, got false/);
  assertRefused({ nodeId: 7 }, '--node-id', /expected a string, got 7/);
  assertRefused({ presence: { chat: true } }, '--presence', /expected a comma-separated string or a list of strings/);
  assertRefused({ presence: ['chat:*', 1] }, '--presence', /expected a comma-separated string or a list of strings/);
  assertRefused({ maxPayload: '12ab' }, '--max-payload', /expected a number, got "12ab"/);
});

test('a secret of the wrong type is refused without echoing it', () => {
  const err = fromJs({ jwtSecret: ['hunter2'] });
  assert.ok(err instanceof ConfigError);
  assert.equal(err.message, 'invalid --jwt-secret: expected a string');
});

test('what the type allows is taken: numbers or numeric strings, lists as arrays or comma-separated strings', () => {
  const config = createConfig({ port: 0, maxPayload: '4096', presence: ['chat:*', ' room:* '], anonymousPublish: 'a:*, b:*', trustProxy: ['127.0.0.1'] });
  assert.equal(config.port, 0);
  assert.equal(config.maxPayload, 4096);
  assert.deepEqual(config.presence, ['chat:*', 'room:*']);
  assert.deepEqual(config.anonymousPublish, ['a:*', 'b:*']);
  assert.deepEqual(config.trustProxy, ['127.0.0.1']);
  assert.deepEqual(createConfig({ allowedOrigins: ['https://a.example'] }).allowedOrigins, { kind: 'list', origins: new Set(['https://a.example:443']) });
  // undefined is "not given", as an optional property allows.
  assert.equal(createConfig({ port: undefined }).port, 3000);
});

test('something other than an object of options throws', () => {
  for (const options of [[{ port: 1 }], 'port=1', 5]) {
    const err = fromJs(options as unknown as Record<string, unknown>);
    assert.ok(err instanceof ConfigError, String(options));
    assert.match(err.message, /^invalid createConfig: expected an object of options/);
  }
});
