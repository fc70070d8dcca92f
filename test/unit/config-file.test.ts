/**
 * `--config FILE` (issue 27 part 1): a YAML (or JSON) file under the flags' own names. Precedence
 * flag, environment, file, default; errors name the key by its path in the file; `config print`
 * shows the effective configuration with secrets masked.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parse } from 'yaml';
import { loadServeConfig } from '../../src/config/load.js';
import { effectiveOptions, effectiveYaml, MASK, maskUrl } from '../../src/config/print.js';
import { ConfigError } from '../../src/errors.js';
import { tempDir } from '../helpers/security.js';

/** Runs `body` with a file holding `text`; the temporary folder goes afterwards. */
function withFile<T>(text: string, body: (path: string) => T, name = 'fanout.yaml'): T {
  const tmp = tempDir();
  try {
    return body(tmp.file(name, text));
  } finally {
    tmp.cleanup();
  }
}

/** The one-line message loading `argv` with `env` throws. */
function refusal(argv: string[], env: NodeJS.ProcessEnv = {}): string {
  try {
    loadServeConfig(argv, env);
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    assert.ok(!err.message.includes('\n'), err.message);
    return err.message;
  }
  assert.fail(`${argv.join(' ')} loaded`);
}

test('every serve flag can be set in the file under its own name, with YAML types or strings', () => {
  const yaml = [
    'port: 4100',
    'max-payload: 65536',
    "host: '127.0.0.1'",
    'presence: [chat:*, room:*]',
    'anonymous-publish: "notify:*, chat:*"',
    'history-ttl: 2.5',
    'coalesce-ms: 10',
    'bus: redis://127.0.0.1:6379/3',
    'log-level: warn',
    'hook-timeout: "0.5"',
  ].join('\n');
  const config = withFile(yaml, (file) => loadServeConfig(['--config', file], {}));
  assert.equal(config.port, 4100);
  assert.equal(config.maxPayload, 65536);
  assert.equal(config.host, '127.0.0.1');
  assert.deepEqual(config.presence, ['chat:*', 'room:*']);
  assert.deepEqual(config.anonymousPublish, ['notify:*', 'chat:*']);
  assert.equal(config.historyTtl, 2.5);
  assert.equal(config.coalesceMs, 10);
  assert.equal(config.bus.describe, 'redis://127.0.0.1:6379/3');
  assert.equal(config.history.kind, 'redis', 'history follows a bus set in the file');
  assert.equal(config.logLevel, 'warn');
  assert.equal(config.hookTimeout, 0.5);
});

test('a JSON file is YAML too', () => {
  const config = withFile('{"port": 4200, "presence": ["chat:*"], "max-payload": 2048}', (file) => loadServeConfig(['--config', file], {}), 'fanout.json');
  assert.equal(config.port, 4200);
  assert.deepEqual(config.presence, ['chat:*']);
  assert.equal(config.maxPayload, 2048);
});

test('precedence: flag, then environment, then file, then default', () => {
  withFile('port: 4001\nmax-payload: 1000\nheartbeat: 7\nnode-id: from-file\n', (file) => {
    const env = { FANOUT_MAX_PAYLOAD: '2000', FANOUT_HEARTBEAT: '8' };
    const config = loadServeConfig(['--config', file, '--heartbeat', '9'], env);
    assert.equal(config.heartbeat, 9, 'the flag wins over the variable and the file');
    assert.equal(config.maxPayload, 2000, 'the variable wins over the file');
    assert.equal(config.port, 4001, 'the file wins over the default');
    assert.equal(config.nodeId, 'from-file');
    assert.equal(config.rateLimit, 1000, 'what nobody sets is the default');
    // FANOUT_CONFIG names the file as --config does; --config wins over it.
    assert.equal(loadServeConfig([], { FANOUT_CONFIG: file }).port, 4001);
    assert.equal(withFile('port: 4002\n', (other) => loadServeConfig(['--config', other], { FANOUT_CONFIG: file }).port), 4002);
  });
});

test('a bad value, a bad type or an unknown key stops with one line naming the key path in the file', () => {
  const cases: Array<[string, RegExp]> = [
    ['history-size: -1', /^invalid history-size in \S+fanout\.yaml: expected at least 0, got -1$/],
    ['max-payload: [1, 2]', /^invalid max-payload in \S+: expected a number, got \[1,2\]$/],
    ['host: [a, b]', /^invalid host in \S+: expected a string, got \["a","b"\]$/],
    ['port: true', /^invalid port in \S+: expected a number, got true$/],
    ['presence: {chat: true}', /^invalid presence in \S+: expected a comma-separated string or a list of strings/],
    ['presense: [chat:*]', /^invalid presense in \S+: unknown option \(did you mean presence\?\)$/],
    ['maxPayload: 5', /^invalid maxPayload in \S+: unknown option \(keys are written as flags: max-payload\)$/],
    ['config: other.yaml', /^invalid config in \S+: unknown option$/],
    ['log-level: loud', /^invalid log-level in \S+: expected one of fatal, .*got "loud"$/],
    ['jwt-secret: [hunter2]', /^invalid jwt-secret in \S+: expected a string$/],
    ['bus: redis://app:hunter2@h:notaport', /^invalid bus in \S+: (?!.*hunter2)/],
  ];
  for (const [yaml, expected] of cases) {
    withFile(yaml + '\n', (file) => assert.match(refusal(['--config', file]), expected, yaml));
  }
  // A value from the environment is still named by its variable, a flag by its flag.
  withFile('port: 1\n', (file) => {
    assert.match(refusal(['--config', file], { FANOUT_PORT: 'x' }), /^invalid --port \(from FANOUT_PORT\): /);
    assert.match(refusal(['--config', file, '--port', 'x']), /^invalid --port: /);
  });
  // Checks across options name the option where it was given.
  withFile('webhook: http://127.0.0.1:1/hook\n', (file) => assert.match(refusal(['--config', file]), /^invalid --webhook-secret: required with --webhook/));
  withFile('tls-cert: /nonexistent/cert.pem\ntls-key: /nonexistent/key.pem\n', (file) =>
    assert.match(refusal(['--config', file]), /^invalid tls-cert in \S+fanout\.yaml: cannot read \/nonexistent\/cert\.pem/),
  );
});

test('a file that cannot be read or parsed names --config (or FANOUT_CONFIG), with line and column', () => {
  assert.match(refusal(['--config', '/nonexistent/fanout.yaml']), /^invalid --config: cannot read \/nonexistent\/fanout\.yaml: ENOENT/);
  assert.match(refusal([], { FANOUT_CONFIG: '/nonexistent/fanout.yaml' }), /^invalid --config \(from FANOUT_CONFIG\): cannot read/);
  withFile('port: 1\nport: 2\n', (file) => assert.match(refusal(['--config', file]), /is not valid YAML at line 2, column 1: Map keys must be unique$/));
  withFile('port: [1\n', (file) => assert.match(refusal(['--config', file]), /is not valid YAML at line \d+, column \d+: /));
  withFile('presence: *\n', (file) => assert.match(refusal(['--config', file]), /quote a value that starts with \* or &/));
  withFile('- port\n', (file) => assert.match(refusal(['--config', file]), /expected a mapping of options \(max-payload: 65536, …\), got a list$/));
  // An empty file (or one of comments only) sets nothing.
  withFile('# nothing yet\n', (file) => assert.equal(loadServeConfig(['--config', file], {}).port, 3000));
});

test('config print: the effective configuration as a config file, each value with its source, secrets masked', () => {
  const yaml = 'bus: redis://app:hunter2@127.0.0.1:6379\njwt-secret: s3cret\napi-key: k3y\nmax-payload: 1000\npresence: [chat:*]\n';
  withFile(yaml, (file) => {
    const options = effectiveOptions(['--config', file, '--port', '4300'], { FANOUT_HEARTBEAT: '7', FANOUT_HOOK_SECRET: 'hs' });
    const text = effectiveYaml(options);
    for (const secret of ['hunter2', 's3cret', 'k3y', 'hs\n']) assert.ok(!text.includes(secret), `${secret} printed:\n${text}`);
    const printed = parse(text) as Record<string, unknown>;
    assert.equal(printed['port'], 4300);
    assert.equal(printed['bus'], `redis://app:${MASK}@127.0.0.1:6379`);
    assert.equal(printed['history'], `redis://app:${MASK}@127.0.0.1:6379`, 'history follows the bus');
    assert.equal(printed['jwt-secret'], MASK);
    assert.equal(printed['api-key'], MASK);
    assert.equal(printed['hook-secret'], MASK);
    assert.equal(printed['heartbeat'], 7);
    assert.equal(printed['max-payload'], 1000);
    assert.deepEqual(printed['presence'], ['chat:*']);
    assert.equal(printed['history-size'], 100, 'defaults are printed too');
    assert.equal(printed['node-id'], undefined, 'a generated node id is not a setting');
    assert.equal(printed['metrics-token'], undefined, 'unset options are left out');
    assert.match(text, /^port: 4300 # --port$/m);
    assert.match(text, /^heartbeat: 7 # FANOUT_HEARTBEAT$/m);
    assert.match(text, /^max-payload: 1000 # \S+fanout\.yaml$/m);
    assert.match(text, /^history-size: 100 # default$/m);
  });
  // What it prints, with the secrets put back, loads as the same configuration.
  const printed = effectiveYaml(effectiveOptions(['--max-payload', '777', '--presence', 'a:*,b:*'], {}));
  const again = withFile(printed, (file) => loadServeConfig(['--config', file], {}));
  assert.equal(again.maxPayload, 777);
  assert.deepEqual(again.presence, ['a:*', 'b:*']);
});

test('URL passwords are masked, users and hosts kept, in every URL of a list', () => {
  assert.equal(maskUrl('redis://:pw@h:6379/2'), `redis://:${MASK}@h:6379/2`);
  assert.equal(maskUrl('nats://u:p@a:4222,nats://v:q@b:4222'), `nats://u:${MASK}@a:4222,nats://v:${MASK}@b:4222`);
  assert.equal(maskUrl('nats://token@a:4222'), `nats://${MASK}@a:4222`);
  assert.equal(maskUrl('redis://127.0.0.1:6379'), 'redis://127.0.0.1:6379');
});
