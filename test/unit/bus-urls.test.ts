import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { createBus } from '../../src/brokers/create-bus.js';
import { parseBusAddress } from '../../src/config/bus-address.js';
import { ConfigError } from '../../src/errors.js';

const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const run = promisify(execFile);

test('createBus picks the adapter by the address the URL parses to', async () => {
  for (const [url, kind] of [
    ['memory', 'memory'],
    ['redis://127.0.0.1:6379', 'redis'],
    ['redis-cluster://127.0.0.1:7000,127.0.0.1:7001', 'redis-cluster'],
    ['nats://127.0.0.1:4222', 'nats'],
    ['amqp://guest:guest@127.0.0.1:5672', 'amqp'],
    ['amqps://u:p@broker.example:5671/vh', 'amqp'],
  ] as const) {
    const address = parseBusAddress(url);
    assert.equal(address.kind, kind, url);
    const bus = createBus(address);
    assert.equal(bus.kind, kind, url);
    assert.equal(bus.connected, false);
    await bus.close();
  }
});

test('redis:// URLs: kept as given for ioredis, described without credentials, bad ones refused', () => {
  assert.deepEqual(parseBusAddress('redis://127.0.0.1:6379/2'), { kind: 'redis', url: 'redis://127.0.0.1:6379/2', describe: 'redis://127.0.0.1:6379/2' });
  assert.deepEqual(parseBusAddress('rediss://app:s3cret@h:6380'), { kind: 'redis', url: 'rediss://app:s3cret@h:6380', describe: 'rediss://h:6380' });
  for (const bad of ['redis://h:99999', 'redis://h:notaport', 'redis://', 'redis://h:6379/x']) {
    assert.throws(() => parseBusAddress(bad), (err: unknown) => err instanceof ConfigError && err.flag === '--bus', bad);
  }
});

test('redis-cluster:// URLs: several nodes, optional credentials, bad ports refused', () => {
  assert.deepEqual(parseBusAddress('redis-cluster://127.0.0.1:7000, 10.0.0.2:7001'), {
    kind: 'redis-cluster',
    nodes: [
      { host: '127.0.0.1', port: 7000 },
      { host: '10.0.0.2', port: 7001 },
    ],
    describe: 'redis-cluster://127.0.0.1:7000,10.0.0.2:7001',
  });
  assert.deepEqual(parseBusAddress('redis-cluster://:s%40cret@h:7000'), {
    kind: 'redis-cluster',
    nodes: [{ host: 'h', port: 7000 }],
    password: 's@cret',
    describe: 'redis-cluster://h:7000',
  });
  assert.deepEqual(parseBusAddress('redis-cluster://app:pw@h'), {
    kind: 'redis-cluster',
    nodes: [{ host: 'h', port: 6379 }],
    username: 'app',
    password: 'pw',
    describe: 'redis-cluster://h:6379',
  });
  assert.throws(() => parseBusAddress('redis-cluster://h:99999'), ConfigError);
  assert.throws(() => parseBusAddress('redis-cluster://'), ConfigError);
  assert.throws(() => parseBusAddress('redis-cluster://:7000'), ConfigError);
});

test('nats:// URLs: credentials leave the server list, a lone user part is a token', () => {
  assert.deepEqual(parseBusAddress('nats://127.0.0.1:4222'), { kind: 'nats', servers: ['nats://127.0.0.1:4222'], describe: 'nats://127.0.0.1:4222' });
  assert.deepEqual(parseBusAddress('nats://u:p%40ss@a:4222,b:4223'), {
    kind: 'nats',
    servers: ['nats://a:4222', 'nats://b:4223'],
    user: 'u',
    pass: 'p@ss',
    describe: 'nats://a:4222,nats://b:4223',
  });
  assert.deepEqual(parseBusAddress('nats://s3cr3t@a:4222'), { kind: 'nats', servers: ['nats://a:4222'], token: 's3cr3t', describe: 'nats://a:4222' });
  assert.throws(() => parseBusAddress('nats://'), ConfigError);
});

test('amqp URLs get a 10 s heartbeat unless they set one, and a credential-free description', () => {
  assert.deepEqual(parseBusAddress('amqp://g:g@h:5672'), { kind: 'amqp', url: 'amqp://g:g@h:5672?heartbeat=10', describe: 'amqp://h:5672' });
  assert.equal((parseBusAddress('amqp://g:g@h:5672/v?frameMax=8192') as { url: string }).url, 'amqp://g:g@h:5672/v?frameMax=8192&heartbeat=10');
  assert.equal((parseBusAddress('amqp://h?heartbeat=30') as { url: string }).url, 'amqp://h?heartbeat=30');
  assert.throws(() => parseBusAddress('amqp://h:70000'), ConfigError);
});

test('an unknown scheme names --bus and what it accepts', () => {
  assert.throws(() => parseBusAddress('mqtt://x:1883'), /^ConfigError: invalid --bus: expected memory, redis:\/\//);
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
