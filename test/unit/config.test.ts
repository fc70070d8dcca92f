import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createConfig, loadServeConfig } from '../../src/config/load.js';
import { DEFAULTS } from '../../src/config/schema.js';
import { ConfigError } from '../../src/errors.js';

test('defaults: port 3000, all interfaces, memory bus, deflate-free limits', () => {
  const config = loadServeConfig([], {});
  assert.equal(config.port, 3000);
  assert.equal(config.host, '0.0.0.0');
  assert.equal(config.bus, 'memory');
  assert.equal(config.maxPayload, DEFAULTS.maxPayload);
  assert.equal(config.heartbeat, 25);
  assert.match(config.nodeId, /^[A-Za-z0-9._-]+$/);
  assert.ok(Object.isFrozen(config));
});

test('every flag is also an environment variable, and a flag wins', () => {
  const env = { FANOUT_PORT: '4000', FANOUT_BUS: 'redis://127.0.0.1:6379/2', FANOUT_NODE_ID: 'a1', FANOUT_MAX_CONNECTIONS_PER_IP: '7' };
  const fromEnv = loadServeConfig([], env);
  assert.equal(fromEnv.port, 4000);
  assert.equal(fromEnv.bus, 'redis://127.0.0.1:6379/2');
  assert.equal(fromEnv.nodeId, 'a1');
  assert.equal(fromEnv.maxConnectionsPerIp, 7);
  const both = loadServeConfig(['--port', '5000', '--node-id=b2'], env);
  assert.equal(both.port, 5000);
  assert.equal(both.nodeId, 'b2');
});

test('an invalid value is one error naming the flag', () => {
  const cases: Array<[string[], string]> = [
    [['--port', 'abc'], '--port'],
    [['--port', '70000'], '--port'],
    [['--bus', 'kafka://x'], '--bus'],
    [['--node-id', 'has space'], '--node-id'],
    [['--max-payload', '0'], '--max-payload'],
    [['--heartbeat', '-1'], '--heartbeat'],
    [['--nope'], '--nope'],
    [['--tls-cert', 'a.pem'], '--tls-key'],
    [['--coalesce-ms', 'fast'], '--coalesce-ms'],
    [['--coalesce-ms', '-5'], '--coalesce-ms'],
  ];
  for (const [argv, flag] of cases) {
    assert.throws(
      () => loadServeConfig(argv, {}),
      (err: unknown) => err instanceof ConfigError && err.flag === flag && err.message.startsWith(`invalid ${flag}`) && !err.message.includes('\n'),
      `${argv.join(' ')} should name ${flag}`,
    );
  }
});

test('a bad environment variable names the flag and the variable', () => {
  assert.throws(() => loadServeConfig([], { FANOUT_PORT: 'x' }), /invalid --port \(from FANOUT_PORT\)/);
});

test('comma lists are split and trimmed', () => {
  const config = createConfig({ allowedOrigins: 'https://a.example, https://b.example' });
  assert.deepEqual(config.allowedOrigins, ['https://a.example', 'https://b.example']);
});

test("--coalesce-ms is 'auto' by default, or a whole number of milliseconds", () => {
  assert.equal(loadServeConfig([], {}).coalesceMs, 'auto');
  assert.equal(loadServeConfig(['--coalesce-ms', '20'], {}).coalesceMs, 20);
  assert.equal(loadServeConfig(['--coalesce-ms', '0'], {}).coalesceMs, 0);
  assert.equal(loadServeConfig([], { FANOUT_COALESCE_MS: 'auto' }).coalesceMs, 'auto');
});
