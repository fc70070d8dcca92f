import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { Redis } from 'ioredis';
import { createBus } from '../../src/brokers/create-bus.js';
import { MemoryBroker } from '../../src/brokers/memory/bus.js';
import { createConfig, loadServeConfig, toFlag, type ConfigInput } from '../../src/config/load.js';
import { DEFAULTS, type Config } from '../../src/config/schema.js';
import { checkClusterHistory } from '../../src/config/history-target.js';
import { ConfigError } from '../../src/errors.js';
import { MemoryChannelStore, MemoryPresenceStore } from '../../src/brokers/memory/stores.js';
import { RedisChannelStore, withScripts } from '../../src/brokers/redis/stores.js';
import { KafkaLog } from '../../src/brokers/kafka/log.js';
import { JetStreamLog } from '../../src/brokers/nats/jetstream.js';
import { createLogger } from '../../src/logger.js';
import { FANOUT_MAIN } from '../../harness/fanout-process.js';
import { keyPair, selfSignedCert, tempDir } from '../helpers/security.js';

test('defaults: port 3000, all interfaces, memory bus, deflate-free limits', () => {
  const config = loadServeConfig([], {});
  assert.equal(config.port, 3000);
  assert.equal(config.host, '0.0.0.0');
  assert.deepEqual(config.bus, { kind: 'memory', describe: 'memory' });
  assert.deepEqual(config.history, { kind: 'memory', describe: 'memory' });
  assert.deepEqual(config.allowedOrigins, { kind: 'same-origin' });
  assert.deepEqual(config.auth, { kind: 'anonymous' });
  assert.equal(config.jwt, false);
  assert.equal(config.tls, undefined);
  assert.equal(config.maxPayload, DEFAULTS.maxPayload);
  assert.equal(config.heartbeat, 25);
  assert.equal(config.rateLimit, 1000, 'a socket cannot flood a node by default');
  assert.match(config.nodeId, /^[A-Za-z0-9._-]+$/);
  assert.ok(Object.isFrozen(config));
});

test('every flag is also an environment variable, and a flag wins', () => {
  const env = { FANOUT_PORT: '4000', FANOUT_BUS: 'redis://127.0.0.1:6379/2', FANOUT_NODE_ID: 'a1', FANOUT_MAX_CONNECTIONS_PER_IP: '7' };
  const fromEnv = loadServeConfig([], env);
  assert.equal(fromEnv.port, 4000);
  assert.deepEqual(fromEnv.bus, { kind: 'redis', url: 'redis://127.0.0.1:6379/2', describe: 'redis://127.0.0.1:6379/2' });
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
    [['--bus', 'kafka://x:notaport'], '--bus'],
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

test('--history-max-bytes and --rate-limit-bytes: defaults, variables, refusals that name the flag, and --help', () => {
  const config = loadServeConfig([], {});
  assert.equal(config.historyMaxBytes, 256 * 1024 * 1024, 'memory history capped at 256 MiB by default');
  assert.equal(config.rateLimitBytes, 1024 * 1024, '1 MiB/s per connection by default');
  const set = loadServeConfig(['--history-max-bytes', '0'], { FANOUT_RATE_LIMIT_BYTES: '4096', FANOUT_HISTORY_MAX_BYTES: '5' });
  assert.equal(set.historyMaxBytes, 0, 'a flag wins; 0 is no cap');
  assert.equal(set.rateLimitBytes, 4096);
  for (const [argv, env, flag] of [
    [['--history-max-bytes', '-1'], {}, '--history-max-bytes'],
    [['--history-max-bytes', '1.5'], {}, '--history-max-bytes'],
    [['--history-max-bytes', 'lots'], {}, '--history-max-bytes'],
    [['--rate-limit-bytes', '-3'], {}, '--rate-limit-bytes'],
    [['--rate-limit-bytes', 'fast'], {}, '--rate-limit-bytes'],
    [[], { FANOUT_RATE_LIMIT_BYTES: 'x' }, '--rate-limit-bytes (from FANOUT_RATE_LIMIT_BYTES)'],
  ] as Array<[string[], Record<string, string>, string]>) {
    assert.throws(
      () => loadServeConfig(argv, env),
      (err: unknown) => err instanceof ConfigError && err.message.startsWith(`invalid ${flag}`) && !err.message.includes('\n'),
      `${argv.join(' ')} should name ${flag}`,
    );
  }
  // What a user sees: the flags in --help with their defaults, and exit 2 with one line.
  const help = spawnSync(process.execPath, [FANOUT_MAIN, 'serve', '--help'], { encoding: 'utf8' });
  assert.equal(help.status, 0);
  assert.match(help.stdout + help.stderr, /--history-max-bytes[^\n]*default 268435456/);
  assert.match(help.stdout + help.stderr, /--rate-limit-bytes[^\n]*default 1048576/);
  const bad = spawnSync(process.execPath, [FANOUT_MAIN, 'serve', '--rate-limit-bytes', '-1'], { encoding: 'utf8' });
  assert.equal(bad.status, 2);
  assert.equal(bad.stderr.trim(), 'fanout: invalid --rate-limit-bytes: expected at least 0, got "-1"');
});

test('a bad environment variable names the flag and the variable', () => {
  assert.throws(() => loadServeConfig([], { FANOUT_PORT: 'x' }), /invalid --port \(from FANOUT_PORT\)/);
});

test('comma lists are split and trimmed', () => {
  const config = createConfig({ allowedOrigins: 'https://a.example, https://b.example' });
  assert.deepEqual(config.allowedOrigins, { kind: 'list', origins: new Set(['https://a.example:443', 'https://b.example:443']) });
  assert.deepEqual(createConfig({ allowedOrigins: '*' }).allowedOrigins, { kind: 'any' });
});

test("--coalesce-ms is 'auto' by default, or a whole number of milliseconds", () => {
  assert.equal(loadServeConfig([], {}).coalesceMs, 'auto');
  assert.equal(loadServeConfig(['--coalesce-ms', '20'], {}).coalesceMs, 20);
  assert.equal(loadServeConfig(['--coalesce-ms', '0'], {}).coalesceMs, 0);
  assert.equal(loadServeConfig([], { FANOUT_COALESCE_MS: 'auto' }).coalesceMs, 'auto');
});

/** The config `options` give, from code and from the command line; both must fail alike. */
function expectRejected(options: Readonly<Record<string, string>>, flag: string, detail?: RegExp): void {
  const argv = Object.entries(options).flatMap(([key, value]) => [`--${toFlag(key)}`, value]);
  const label = argv.join(' ');
  let fromCode: ConfigError | undefined;
  try {
    createConfig(options as ConfigInput);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `${label}: ${String(err)}`);
    fromCode = err;
  }
  assert.ok(fromCode, `${label}: createConfig returned a config`);
  assert.equal(fromCode.flag, flag, label);
  assert.ok(fromCode.message.startsWith(`invalid ${flag}: `), fromCode.message);
  assert.ok(!fromCode.message.includes('\n'), fromCode.message);
  if (detail) assert.match(fromCode.message, detail, label);
  assert.throws(
    () => loadServeConfig(argv, {}),
    (err: unknown) => err instanceof ConfigError && err.message === fromCode.message,
    `${label}: loadServeConfig should give the same line: ${fromCode.message}`,
  );
}

test('createConfig never returns a config that fails later: a bus URL the adapter cannot use names --bus', () => {
  for (const bus of ['redis-cluster://h:notaport', 'redis-cluster://', 'nats://', 'redis://h:99999', 'redis://h:6379/db', 'amqp://', 'kafka://h:9092/bad topic', 'kafka://', 'Memory']) {
    expectRejected({ bus }, '--bus');
  }
});

test('createConfig never returns a config that fails later: --history takes only memory, one Redis, NATS or Kafka', () => {
  for (const history of ['amqp://g:g@127.0.0.1:5672', 'redis-cluster://127.0.0.1:7000,127.0.0.1:7001']) {
    expectRejected({ history }, '--history', /expected memory, redis:\/\/host:port\[\/db\], nats:\/\/host:port or kafka:\/\/host:port\[\/topic\]/);
  }
  expectRejected({ history: 'redis://h:notaport' }, '--history');
  expectRejected({ history: 'nats://' }, '--history', /no host in NATS server/);
  expectRejected({ history: 'kafka://h/bad topic' }, '--history', /bad Kafka topic/);
  // Also with a bus that could carry it: the bus does not make a bad --history work.
  expectRejected({ bus: 'nats://127.0.0.1:4222', history: 'nats://h:99999' }, '--history');
});

test('--history nats:// is JetStream history, the same NATS as the bus when the servers match', () => {
  const same = createConfig({ bus: 'nats://127.0.0.1:4222', history: 'nats://u:p@127.0.0.1:4222' }).history;
  assert.equal(same.kind, 'nats');
  assert.equal(same.kind === 'nats' && same.sameAsBus, true);
  assert.equal(same.describe, 'nats://127.0.0.1:4222');
  const other = createConfig({ bus: 'redis://127.0.0.1:6379', history: 'nats://127.0.0.1:4222,127.0.0.1:4223' }).history;
  assert.deepEqual(other.kind === 'nats' && [other.sameAsBus, other.address.servers], [false, ['nats://127.0.0.1:4222', 'nats://127.0.0.1:4223']]);
});

test('createConfig never returns a config that fails later: TLS files are read and checked at load', () => {
  const tmp = tempDir();
  try {
    const { cert, key } = selfSignedCert(tmp.dir);
    const config = createConfig({ tlsCert: cert, tlsKey: key });
    assert.deepEqual(config.tls, { cert: readFileSync(cert), key: readFileSync(key) });
    const missing = join(tmp.dir, 'missing.pem');
    expectRejected({ tlsCert: missing, tlsKey: key }, '--tls-cert', /cannot read/);
    expectRejected({ tlsCert: cert, tlsKey: missing }, '--tls-key', /cannot read/);
    expectRejected({ tlsCert: tmp.file('junk.pem', 'hello'), tlsKey: key }, '--tls-cert', /not a PEM certificate/);
    expectRejected({ tlsCert: cert, tlsKey: tmp.file('junk-key.pem', 'hello') }, '--tls-key', /not an unencrypted PEM private key/);
    const other = tempDir();
    try {
      expectRejected({ tlsCert: cert, tlsKey: selfSignedCert(other.dir).key }, '--tls-key', /not the key of the --tls-cert certificate/);
    } finally {
      other.cleanup();
    }
    // The pairing is checked first: one of the two alone names the missing one, whatever the file.
    expectRejected({ tlsCert: missing }, '--tls-key', /go together/);
  } finally {
    tmp.cleanup();
  }
});

test('createConfig never returns a config that fails later: --jwt-public-key is read and parsed at load', () => {
  const tmp = tempDir();
  try {
    for (const [kind, algorithm] of [['rsa', 'RS256'], ['ec', 'ES256']] as const) {
      const { publicKey, publicPem } = keyPair(kind);
      const config = createConfig({ jwtPublicKey: tmp.file(`${kind}.pem`, publicPem) });
      assert.equal(config.jwt, true);
      assert.equal(config.auth.kind, 'public-key');
      if (config.auth.kind !== 'public-key') return;
      assert.equal(config.auth.algorithm, algorithm);
      assert.ok(config.auth.key.equals(publicKey), `${kind}: the key read is the key written`);
    }
    expectRejected({ jwtPublicKey: join(tmp.dir, 'missing.pem') }, '--jwt-public-key', /cannot read/);
    expectRejected({ jwtPublicKey: tmp.file('not-a-key.pem', 'hello') }, '--jwt-public-key', /cannot read a PEM public key/);
    const ed = generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }).toString();
    expectRejected({ jwtPublicKey: tmp.file('ed25519.pem', ed) }, '--jwt-public-key', /expected an RSA or P-256 EC public key, got ed25519/);
    // A private key would work (its public half is derived), but it has no business on a node.
    const privateKeys = {
      ec: generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey,
      rsa: generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey,
    };
    for (const [kind, privateKey] of Object.entries(privateKeys)) {
      const privatePem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
      expectRejected({ jwtPublicKey: tmp.file(`${kind}-private.pem`, privatePem) }, '--jwt-public-key', /holds a private key; give the public key/);
    }
  } finally {
    tmp.cleanup();
  }
});

test('channel pattern flags are bounded like token claims: at most 100 patterns of channel-name characters and *', () => {
  const many = Array.from({ length: 101 }, (_, i) => `c${i}:*`).join(',');
  for (const key of ['presence', 'anonymousSubscribe', 'anonymousPublish'] as const) {
    expectRejected({ [key]: many }, `--${key.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())}`, /at most 100 patterns/);
    expectRejected({ [key]: 'chat room' }, `--${key.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())}`, /letters, digits/);
  }
  assert.deepEqual(createConfig({ presence: 'chat:*, room:*' }).presence, ['chat:*', 'room:*']);
});

test('createConfig never returns a config that fails later: a bad --allowed-origins entry names the flag', () => {
  for (const allowedOrigins of ['good.example', 'http://good.example/path', '*,http://a.example', 'https://user@good.example']) {
    expectRejected({ allowedOrigins }, '--allowed-origins');
  }
});

test('a value read from the environment is named by its variable too, at load as in the schema', () => {
  const tmp = tempDir();
  try {
    const { key } = selfSignedCert(tmp.dir);
    const env = { FANOUT_TLS_CERT: join(tmp.dir, 'missing.pem'), FANOUT_TLS_KEY: key };
    assert.throws(() => loadServeConfig([], env), /^ConfigError: invalid --tls-cert \(from FANOUT_TLS_CERT\): cannot read/);
    assert.throws(() => loadServeConfig([], { FANOUT_HISTORY: 'amqp://h:5672' }), /^ConfigError: invalid --history \(from FANOUT_HISTORY\): expected memory/);
  } finally {
    tmp.cleanup();
  }
});

test('credentials in a rejected URL stay out of the message', () => {
  for (const [options, flag] of [
    [{ bus: 'redis-cluster://app:hunter2@h:notaport' }, '--bus'],
    [{ bus: 'nats://app:hunter2@h:99999' }, '--bus'],
    [{ history: 'nats://app:hunter2@h:99999' }, '--history'],
    [{ history: 'amqp://app:hunter2@h:5672' }, '--history'],
  ] as const) {
    assert.throws(
      () => createConfig(options),
      (err: unknown) => err instanceof ConfigError && err.flag === flag && !err.message.includes('hunter2'),
      JSON.stringify(options),
    );
  }
});

test('the history target: --history, else the bus when it is one Redis, else memory', () => {
  const redis = 'redis://app:pw@127.0.0.1:6379/2';
  assert.deepEqual(createConfig({ bus: redis }).history, { kind: 'redis', url: redis, sameAsBus: true, describe: 'redis://127.0.0.1:6379/2' });
  assert.deepEqual(createConfig({ bus: redis, history: redis }).history, { kind: 'redis', url: redis, sameAsBus: true, describe: 'redis://127.0.0.1:6379/2' });
  assert.deepEqual(createConfig({ bus: redis, history: 'memory' }).history, { kind: 'memory', describe: 'memory' });
  assert.deepEqual(createConfig({ bus: 'nats://127.0.0.1:4222', history: 'redis://127.0.0.1:6380' }).history, {
    kind: 'redis',
    url: 'redis://127.0.0.1:6380',
    sameAsBus: false,
    describe: 'redis://127.0.0.1:6380',
  });
  assert.deepEqual(createConfig({ bus: 'memory' }).history, { kind: 'memory', describe: 'memory' });
  assert.deepEqual(createConfig({}).history, { kind: 'memory', describe: 'memory' });
});

test('the history default follows a bus that can hold it: NATS holds history and presence in JetStream', () => {
  const nats = createConfig({ bus: 'nats://app:pw@127.0.0.1:4222,127.0.0.1:4223' });
  assert.deepEqual(nats.history, { kind: 'nats', address: nats.bus, sameAsBus: true, describe: 'nats://127.0.0.1:4222,nats://127.0.0.1:4223' });
  // Given explicitly: the same target; another NATS than the bus is not the bus.
  assert.deepEqual(createConfig({ bus: 'nats://127.0.0.1:4222', history: 'nats://127.0.0.1:4222' }).history, createConfig({ bus: 'nats://127.0.0.1:4222' }).history);
  const other = createConfig({ bus: 'nats://127.0.0.1:4222', history: 'nats://tok@10.0.0.5:4222' }).history;
  assert.equal(other.kind, 'nats');
  assert.equal(other.kind === 'nats' && other.sameAsBus, false);
  assert.equal(other.kind === 'nats' && other.address.token, 'tok');
  assert.equal(other.describe, 'nats://10.0.0.5:4222');
  // NATS history under another bus.
  assert.equal(createConfig({ bus: 'redis://127.0.0.1:6379', history: 'nats://127.0.0.1:4222' }).history.kind, 'nats');
});

test('a bus that cannot hold history and no --history: refused at start with one line saying what to add', () => {
  for (const [bus, scheme] of [
    ['amqp://g:g@127.0.0.1:5672', 'amqp'],
    ['amqps://g:g@broker.example:5671/vh', 'amqps'],
    ['redis-cluster://127.0.0.1:7000,127.0.0.1:7001', 'redis-cluster'],
  ] as const) {
    assert.throws(
      () => createConfig({ bus }),
      (err: unknown) =>
        err instanceof ConfigError &&
        err.flag === '--history' &&
        err.message ===
          `invalid --history: missing: the ${scheme}:// bus cannot hold channel history, recovery or presence; add --history redis://host:port (shared by the nodes) or --history memory (each node its own)`,
      bus,
    );
    // Asked for: per-node history, or a shared Redis.
    assert.deepEqual(createConfig({ bus, history: 'memory' }).history, { kind: 'memory', describe: 'memory' }, bus);
    assert.equal(createConfig({ bus, history: 'redis://127.0.0.1:6379' }).history.kind, 'redis', bus);
  }
  // Kafka: history on the bus's own Kafka (a topic beside the bus topic), or where asked.
  assert.deepEqual(createConfig({ bus: 'kafka://127.0.0.1:9092/events' }).history, {
    kind: 'kafka',
    address: { kind: 'kafka', brokers: ['127.0.0.1:9092'], topic: 'events', describe: 'kafka://127.0.0.1:9092/events' },
    sameAsBus: true,
    describe: 'kafka://127.0.0.1:9092/events',
  });
  assert.equal(createConfig({ bus: 'kafka://127.0.0.1:9092', history: 'redis://127.0.0.1:6379' }).history.kind, 'redis');
  const kafkaHistory = createConfig({ bus: 'redis://127.0.0.1:6379', history: 'kafka://k1:9093,k2' }).history;
  assert.equal(kafkaHistory.kind === 'kafka' && kafkaHistory.sameAsBus, false);
  assert.equal(kafkaHistory.describe, 'kafka://k1:9093,k2:9092/fanout');
  expectRejected({ history: 'kafka://user:pw@k1' }, '--history', /kafka:\/\/ takes no credentials/);
  // From the environment too, and the same line from the CLI's loader.
  assert.throws(() => loadServeConfig([], { FANOUT_BUS: 'amqp://g:g@h:5672' }), /^ConfigError: invalid --history: missing: the amqp:\/\/ bus cannot hold/);
  assert.equal(loadServeConfig(['--bus', 'amqp://g:g@h:5672'], { FANOUT_HISTORY: 'memory' }).history.kind, 'memory');
});

test('fanout cluster: per-node history with several nodes on a shared bus is refused, saying what to give', () => {
  const check = (bus: string, history: string | undefined, nodes: number) => {
    const config = createConfig({ bus, ...(history ? { history } : {}) });
    checkClusterHistory(config.history, config.bus, nodes);
  };
  const refused = (bus: string, nodes: number, line: string) =>
    assert.throws(() => check(bus, 'memory', nodes), (err: unknown) => err instanceof ConfigError && err.flag === '--history' && err.message === line, bus);
  refused('nats://127.0.0.1:4222', 2, 'invalid --history: memory keeps history and presence per node, which breaks a chat across 2 nodes; leave --history out (the nats:// bus holds them) or give --history redis://host:port');
  refused('redis://127.0.0.1:6379', 3, 'invalid --history: memory keeps history and presence per node, which breaks a chat across 3 nodes; leave --history out (the redis:// bus holds them) or give --history redis://host:port');
  refused('amqp://g:g@127.0.0.1:5672', 2, 'invalid --history: memory keeps history and presence per node, which breaks a chat across 2 nodes; give --history redis://host:port');
  // Shared history, one node, or the memory bus (one process, one store): allowed.
  check('nats://127.0.0.1:4222', undefined, 2);
  check('redis://127.0.0.1:6379', undefined, 2);
  check('amqp://g:g@127.0.0.1:5672', 'redis://127.0.0.1:6379', 2);
  check('redis-cluster://127.0.0.1:7000', 'nats://127.0.0.1:4222', 2);
  check('amqp://g:g@127.0.0.1:5672', 'memory', 1);
  check('memory', 'memory', 1);
});

test('--jwt-secret and --jwks-url become the auth mode, and anonymous channels follow it', () => {
  const secret = createConfig({ jwtSecret: 's3cret' });
  assert.equal(secret.jwt, true);
  assert.deepEqual(secret.auth, { kind: 'secret', key: new TextEncoder().encode('s3cret'), algorithm: 'HS256' });
  const jwks = createConfig({ jwksUrl: 'https://idp.example/.well-known/jwks.json' });
  assert.equal(jwks.jwt, true);
  assert.equal(jwks.auth.kind === 'jwks' && jwks.auth.url.href, 'https://idp.example/.well-known/jwks.json');
  expectRejected({ jwtSecret: 's', jwksUrl: 'https://idp.example/jwks' }, '--jwt-secret', /give only one/);
  // jose fetches key sets over HTTP(S) only: another scheme would refuse every client later.
  expectRejected({ jwksUrl: 'ftp://idp.example/jwks.json' }, '--jwks-url', /expected an http:\/\/ or https:\/\/ URL/);
});

test('hook flags: http(s) URLs, a timeout in seconds (default 3), a concurrency cap (default 64), a secret never echoed', () => {
  const config = createConfig({ connectHook: 'http://app.internal:8080/fanout/connect', publishHook: 'https://app.example/publish' });
  assert.equal(config.connectHook, 'http://app.internal:8080/fanout/connect');
  assert.equal(config.subscribeHook, undefined);
  assert.equal(config.hookTimeout, DEFAULTS.hookTimeout);
  assert.equal(config.hookTimeout, 3);
  assert.equal(config.hookConcurrency, 64);
  assert.equal(createConfig({ hookTimeout: '0.5' }).hookTimeout, 0.5);
  for (const flag of ['connectHook', 'subscribeHook', 'publishHook']) {
    expectRejected({ [flag]: 'ftp://app.example/hook' }, `--${toFlag(flag)}`, /expected an http:\/\/ or https:\/\/ URL/);
    expectRejected({ [flag]: 'not a url' }, `--${toFlag(flag)}`, /expected an http:\/\/ or https:\/\/ URL/);
  }
  expectRejected({ hookTimeout: '0' }, '--hook-timeout', /more than 0 seconds/);
  expectRejected({ hookTimeout: 'soon' }, '--hook-timeout', /number of seconds/);
  expectRejected({ hookConcurrency: '0' }, '--hook-concurrency', /at least 1/);
  expectRejected({ hookConcurrency: '2.5' }, '--hook-concurrency', /whole number/);
  // A URL's credentials and the secret stay out of the message.
  assert.throws(() => loadServeConfig(['--connect-hook', 'ftp://user:pw@app.example/x'], {}), (err: Error) => !err.message.includes('pw'));
  assert.throws(() => loadServeConfig(['--hook-secret', ''], {}), (err: Error) => err instanceof ConfigError);
});

/** Builds what a node builds from `config`'s bus address and history target, and checks it works. */
async function buildBusAndStores(config: Config): Promise<void> {
  const bus = createBus(config.bus, { broker: new MemoryBroker() });
  try {
    assert.equal(bus.kind, config.bus.kind);
    const history = config.history;
    // Only the memory bus is connected: the others would need their broker.
    if (bus.kind === 'memory') {
      await bus.connect();
      assert.equal(bus.connected, true);
    }
    if (history.kind === 'memory') {
      const owner = {};
      const delivered: string[] = [];
      const channels = new MemoryChannelStore(owner, {
        historySize: config.historySize,
        historyTtl: config.historyTtl,
        historyMaxBytes: config.historyMaxBytes,
        connected: () => true,
        deliver: (topic) => void delivered.push(topic),
      });
      const position = await channels.publish({ channel: 'room', topic: 'fanout:ch:room', origin: config.nodeId, data: '"hi"' });
      assert.equal(position.offset, 1);
      assert.deepEqual(delivered, ['fanout:ch:room']);
      assert.deepEqual((await channels.read('room')).messages, [{ offset: 1, data: '"hi"' }]);
      const presence = new MemoryPresenceStore(owner, config.nodeId);
      await presence.join('room', { client: 'c1', user: 'alice' });
      assert.equal((await presence.list('room')).length, 1);
    } else if (history.kind === 'nats') {
      // Built, not connected.
      const log = new JetStreamLog({
        address: history.address,
        prefix: config.busPrefix,
        nodeId: config.nodeId,
        historySize: config.historySize,
        historyTtl: config.historyTtl,
        channelOf: (topic) => topic,
        logger: createLogger('silent'),
      });
      assert.equal(log.layout.stream, `FANOUT_${config.busPrefix}`);
      await log.close();
    } else if (history.kind === 'kafka') {
      // Built, not connected.
      const log = new KafkaLog({
        address: history.address,
        nodeId: config.nodeId,
        historySize: config.historySize,
        historyTtl: config.historyTtl,
        channelOf: (topic) => topic,
        topicOf: (channel) => channel,
        logger: createLogger('silent'),
      });
      assert.equal(log.topic, `${history.address.topic}.channels`);
      await log.close();
    } else {
      // Built, not connected: ioredis takes the URL as it is (lazyConnect, so no broker is needed).
      const redis = withScripts(new Redis(history.url, { lazyConnect: true }));
      const channels = new RedisChannelStore(redis, { prefix: config.busPrefix, historySize: config.historySize, historyTtl: config.historyTtl });
      await channels.close();
      redis.disconnect();
    }
  } finally {
    await bus.close();
  }
}

test("createConfig()'s default config builds a bus and stores that work", async () => {
  await buildBusAndStores(createConfig());
});

test('every bus and history the schema accepts builds without throwing', async () => {
  for (const options of [
    { bus: 'redis://127.0.0.1:6379' },
    { bus: 'rediss://u:p@127.0.0.1:6380/1', history: 'memory' },
    { bus: 'redis-cluster://127.0.0.1:7000,127.0.0.1:7001', history: 'memory' },
    { bus: 'nats://u:p@127.0.0.1:4222' },
    { bus: 'nats://u:p@127.0.0.1:4222', history: 'redis://127.0.0.1:6379/3' },
    { bus: 'amqps://u:p@broker.example:5671/vh', history: 'redis://127.0.0.1:6379' },
    { bus: 'nats://127.0.0.1:4222', history: 'nats://u:p@127.0.0.1:4222' },
  ]) {
    await buildBusAndStores(createConfig(options));
  }
});

test('--kafka-ingest: brokers from a kafka:// bus or --kafka-brokers, the group shared by the cluster; refusals name one flag', () => {
  const fromBus = loadServeConfig(['--bus', 'kafka://k1:9093,k2/events', '--history', 'redis://127.0.0.1:6379', '--kafka-ingest', 'orders', '--bus-prefix', 'shop'], {});
  assert.deepEqual(fromBus.kafkaIngest, { topic: 'orders', brokers: ['k1:9093', 'k2:9092'], group: 'fanout-ingest-shop', describe: 'k1:9093,k2:9092' });
  const given = loadServeConfig(['--bus', 'redis://127.0.0.1:6379', '--kafka-brokers', 'a:1,b', '--kafka-ingest-group', 'g1'], { FANOUT_KAFKA_INGEST: 'orders' });
  assert.deepEqual(given.kafkaIngest, { topic: 'orders', brokers: ['a:1', 'b:9092'], group: 'g1', describe: 'a:1,b:9092' });
  assert.equal(loadServeConfig([], {}).kafkaIngest, undefined);

  const refusals: Array<[string[], NodeJS.ProcessEnv, string, RegExp]> = [
    [['--kafka-ingest', 'orders'], {}, '--kafka-brokers', /required with --kafka-ingest when --bus is not kafka/],
    [['--bus', 'redis://127.0.0.1:6379'], { FANOUT_KAFKA_INGEST: 'orders' }, '--kafka-brokers', /required/],
    [['--kafka-ingest', 'bad topic', '--kafka-brokers', 'a:1'], {}, '--kafka-ingest', /Kafka topic name/],
    [['--kafka-ingest', '..', '--kafka-brokers', 'a:1'], {}, '--kafka-ingest', /not \. or \.\./],
    [['--kafka-ingest', 'orders', '--kafka-brokers', 'a:notaport'], {}, '--kafka-brokers', /bad port/],
    [['--kafka-ingest', 'orders', '--kafka-brokers', 'kafka://a:1'], {}, '--kafka-brokers', /no scheme/],
    [['--kafka-ingest', 'orders', '--kafka-brokers', ','], {}, '--kafka-brokers', /at least one host:port/],
    [['--kafka-ingest', 'orders', '--kafka-brokers', 'a:1', '--kafka-ingest-group', 'no space'], {}, '--kafka-ingest-group', /expected 1 to 249/],
    [['--kafka-brokers', 'a:1'], {}, '--kafka-brokers', /goes with --kafka-ingest/],
    [['--kafka-ingest-group', 'g'], {}, '--kafka-ingest-group', /goes with --kafka-ingest/],
  ];
  for (const [argv, env, flag, reason] of refusals) {
    assert.throws(
      () => loadServeConfig(argv, env),
      (err: unknown) => err instanceof ConfigError && err.flag.startsWith(flag) && reason.test(err.message) && !err.message.includes('\n'),
      `${argv.join(' ')} ${JSON.stringify(env)}: one line naming ${flag}`,
    );
  }
  // From the environment, the variable is named too.
  assert.throws(() => loadServeConfig([], { FANOUT_KAFKA_INGEST: 'orders' }), /invalid --kafka-brokers: required/);
  assert.throws(() => loadServeConfig([], { FANOUT_KAFKA_INGEST: 'orders', FANOUT_KAFKA_BROKERS: 'a:x' }), /invalid --kafka-brokers \(from FANOUT_KAFKA_BROKERS\): bad port/);
});
