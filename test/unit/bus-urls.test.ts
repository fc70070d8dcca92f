import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { amqpUrl } from '../../src/bus/amqp.js';
import { createBus } from '../../src/bus/create.js';
import { parseNatsUrl } from '../../src/bus/nats.js';
import { parseClusterUrl } from '../../src/bus/redis-cluster.js';
import { ConfigError } from '../../src/errors.js';

const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const run = promisify(execFile);

test('createBus picks the adapter by URL scheme', async () => {
  for (const [url, kind] of [
    ['memory', 'memory'],
    ['redis://127.0.0.1:6379', 'redis'],
    ['redis-cluster://127.0.0.1:7000,127.0.0.1:7001', 'redis-cluster'],
    ['nats://127.0.0.1:4222', 'nats'],
    ['amqp://guest:guest@127.0.0.1:5672', 'amqp'],
    ['amqps://u:p@broker.example:5671/vh', 'amqp'],
  ] as const) {
    const bus = createBus(url);
    assert.equal(bus.kind, kind, url);
    assert.equal(bus.connected, false);
    await bus.close();
  }
});

test('redis-cluster:// URLs: several nodes, optional credentials, bad ports refused', () => {
  assert.deepEqual(parseClusterUrl('redis-cluster://127.0.0.1:7000, 10.0.0.2:7001'), {
    nodes: [
      { host: '127.0.0.1', port: 7000 },
      { host: '10.0.0.2', port: 7001 },
    ],
  });
  assert.deepEqual(parseClusterUrl('redis-cluster://:s%40cret@h:7000'), { nodes: [{ host: 'h', port: 7000 }], password: 's@cret' });
  assert.deepEqual(parseClusterUrl('redis-cluster://app:pw@h'), { nodes: [{ host: 'h', port: 6379 }], username: 'app', password: 'pw' });
  assert.throws(() => parseClusterUrl('redis-cluster://h:99999'), ConfigError);
  assert.throws(() => parseClusterUrl('redis-cluster://'), ConfigError);
});

test('nats:// URLs: credentials leave the server list, a lone user part is a token', () => {
  assert.deepEqual(parseNatsUrl('nats://127.0.0.1:4222'), { servers: ['nats://127.0.0.1:4222'] });
  assert.deepEqual(parseNatsUrl('nats://u:p%40ss@a:4222,b:4223'), { servers: ['nats://a:4222', 'nats://b:4223'], user: 'u', pass: 'p@ss' });
  assert.deepEqual(parseNatsUrl('nats://s3cr3t@a:4222'), { servers: ['nats://a:4222'], token: 's3cr3t' });
  assert.throws(() => parseNatsUrl('nats://'), ConfigError);
});

test('amqp URLs get a 10 s heartbeat unless they set one', () => {
  assert.equal(amqpUrl('amqp://g:g@h:5672'), 'amqp://g:g@h:5672?heartbeat=10');
  assert.equal(amqpUrl('amqp://g:g@h:5672/v?frameMax=8192'), 'amqp://g:g@h:5672/v?frameMax=8192&heartbeat=10');
  assert.equal(amqpUrl('amqp://h?heartbeat=30'), 'amqp://h?heartbeat=30');
});

test('fanout serve with a malformed broker URL exits 2 with one line naming --bus', async () => {
  for (const bus of ['redis-cluster://h:notaport', 'nats://']) {
    const err = await run(process.execPath, [MAIN, 'serve', '--port', '0', '--bus', bus], { timeout: 20_000 }).then(
      () => assert.fail(`${bus} was accepted`),
      (e: { code: number; stderr: string }) => e,
    );
    assert.equal(err.code, 2, err.stderr);
    const lines = err.stderr.trim().split('\n');
    assert.equal(lines.length, 1, err.stderr);
    assert.match(lines[0]!, /invalid --bus/);
  }
});
