/**
 * A broker that refuses the credentials at start is a configuration error: `fanout serve` stops
 * with exit 2 and one line naming the flag (AMQP's ACCESS_REFUSED, Redis's WRONGPASS/NOAUTH,
 * NATS's Authorization Violation), instead of retrying for ever with /readyz 503. Private
 * redis-server and nats-server processes with passwords, never the shared brokers.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { startNatsServer, startRedisServer, type BrokerProcess } from '../../harness/brokers.js';
import { FANOUT_MAIN, forkFanoutServe } from '../../harness/fanout-process.js';
import { uniquePrefix } from '../helpers/nodes.js';

const run = promisify(execFile);

async function serve(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [FANOUT_MAIN, 'serve', '--port', '0', '--host', '127.0.0.1', '--log-level', 'warn', '--bus-prefix', uniquePrefix('auth'), ...args], { timeout: 20_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

let redis: BrokerProcess;
let nats: BrokerProcess;

before(async () => {
  [redis, nats] = await Promise.all([startRedisServer({ args: ['--requirepass', 'sekret'] }), startNatsServer(['--user', 'fan', '--pass', 'sekret'])]);
});
after(async () => {
  await Promise.all([redis?.destroy(), nats?.destroy()]);
});

test('Redis: a wrong password (WRONGPASS) or none (NOAUTH) stops serve with exit 2 and one line naming --bus or --history', async () => {
  const hostPort = `127.0.0.1:${redis.port}`;
  for (const [args, line] of [
    [['--bus', `redis://:wrong@${hostPort}`], 'fanout: invalid --bus: Redis refused the user or password (WRONGPASS); give the right ones in the URL, redis://[user]:password@host:port\n'],
    [['--bus', `redis://${hostPort}`], 'fanout: invalid --bus: Redis requires a password (NOAUTH); give it in the URL, redis://[user]:password@host:port\n'],
    [['--bus', 'memory', '--history', `redis://:wrong@${hostPort}`], 'fanout: invalid --history: Redis refused the user or password (WRONGPASS); give the right ones in the URL, redis://[user]:password@host:port\n'],
  ] as const) {
    const { code, stderr } = await serve([...args]);
    assert.equal(code, 2, `${args.join(' ')}: ${stderr}`);
    assert.equal(stderr, line, args.join(' '));
  }
  // The right password serves.
  const node = await forkFanoutServe(['--bus', `redis://:sekret@${hostPort}`, '--bus-prefix', uniquePrefix('auth')]);
  assert.equal(await node.stop(), 0);
});

test('NATS: wrong or missing credentials (Authorization Violation) stop serve with exit 2 and one line naming --bus', async () => {
  const hostPort = `127.0.0.1:${nats.port}`;
  const line = 'fanout: invalid --bus: the NATS server refused the credentials (Authorization Violation); give the right ones in the URL, nats://user:password@host:port or nats://token@host:port\n';
  for (const bus of [`nats://fan:wrong@${hostPort}`, `nats://${hostPort}`]) {
    const { code, stderr } = await serve(['--bus', bus]);
    assert.equal(code, 2, `${bus}: ${stderr}`);
    assert.equal(stderr, line, bus);
  }
  const node = await forkFanoutServe(['--bus', `nats://fan:sekret@${hostPort}`, '--bus-prefix', uniquePrefix('auth')]);
  assert.equal(await node.stop(), 0);
});
