// `fanout cluster`'s question before it starts a node (src/cli/broker-reach.ts): does anything
// answer where the bus and a separate --history point? Real sockets on loopback: a listening
// server, and ports nothing listens on.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { after, before, test } from 'node:test';
import { checkBrokersReachable } from '../../src/cli/broker-reach.js';
import { loadServeConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';
import { freePort } from '../../harness/ports.js';

let server: Server;
let open: number;

before(async () => {
  server = createServer((socket) => socket.destroy());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  open = (server.address() as { port: number }).port;
});
after(() => new Promise<void>((resolve) => server.close(() => resolve())));

/** The bus and history a node would get from these serve flags. */
function targets(args: string[]) {
  const { bus, history } = loadServeConfig(args, {});
  return [bus, history] as const;
}

test('the default bus, unreachable: the line says it is the default, names the address and the cause, and the fix', async () => {
  const closed = await freePort();
  const [bus, history] = targets(['--bus', `redis://127.0.0.1:${closed}`]);
  await assert.rejects(checkBrokersReachable(bus, history, true), (err: unknown) => {
    assert.ok(err instanceof ConfigError);
    assert.equal(
      err.message,
      `invalid --bus: nothing answers at redis://127.0.0.1:${closed}, the default bus of a cluster of 2+ nodes (connect ECONNREFUSED 127.0.0.1:${closed}); start redis-server, or pass --bus with the URL of a running one`,
    );
    return true;
  });
});

test('any one answering address of a multi-address bus is enough; the history on the same broker is not asked twice', async () => {
  const closed = await freePort();
  const [bus, history] = targets(['--bus', `kafka://127.0.0.1:${closed},127.0.0.1:${open}`]);
  assert.equal(history.kind === 'kafka' && history.sameAsBus, true);
  await checkBrokersReachable(bus, history, false);
  const [memory, none] = targets([]);
  await checkBrokersReachable(memory, none, false);
});

test('a separate --history is asked too: an answering bus and a silent history store is refused naming --history', async () => {
  const closed = await freePort();
  const [bus, history] = targets(['--bus', `nats://127.0.0.1:${open}`, '--history', `redis://127.0.0.1:${closed}/2`]);
  await assert.rejects(checkBrokersReachable(bus, history, false), {
    message: `invalid --history: nothing answers at redis://127.0.0.1:${closed}/2 (connect ECONNREFUSED 127.0.0.1:${closed}); start redis-server, or pass --history with the URL of a running one`,
  });
});
