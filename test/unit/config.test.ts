import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { createConfig, loadServeConfig, toFlag } from '../../src/config/load.js';
import { DEFAULTS } from '../../src/config/schema.js';
import { ConfigError } from '../../src/errors.js';
import { FANOUT_MAIN } from '../../harness/fanout-process.js';
import { keyPair, selfSignedCert, tempDir } from '../helpers/security.js';
import { expectRejected } from '../helpers/config.js';

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
