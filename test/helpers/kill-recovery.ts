/**
 * The fault test every history store passes: two `fanout serve` nodes, four clients recovering
 * on `stream` (helpers/recovering-channel-client.ts) that start on the first node, a publisher on
 * the second; the first is SIGKILLed mid-stream and the clients come back on the second with
 * `since`: every acknowledged message once, in order, every recovery `recovered:true`.
 */
import assert from 'node:assert/strict';
import { CHANNEL_PATH } from '../../src/protocol/frames.js';
import { forkFanoutServe, waitReadyPort, type ServerProcess } from '../../harness/fanout-process.js';
import { until } from '../../harness/wait.js';
import { connectChannels, publish } from './channels.js';
import { RecoveringChannelClient } from './recovering-channel-client.js';
import { closeAll, type TestClient } from './ws-client.js';

/** `args(id)`: the serve flags of node `id` (k1 is killed, k2 survives). */
export async function recoveryAcrossSigkill(args: (id: string) => string[], timeoutMs = 20_000): Promise<void> {
  const procs: ServerProcess[] = await Promise.all(['k1', 'k2'].map((id) => forkFanoutServe(args(id))));
  const recovering: RecoveringChannelClient[] = [];
  const clients: TestClient[] = [];
  try {
    for (const p of procs) await waitReadyPort(p.port, timeoutMs);
    const [victim, survivor] = procs as [ServerProcess, ServerProcess];
    // Clients start on the victim and, once it is gone, reconnect to the survivor.
    let victimAlive = true;
    const url = (): string => `ws://127.0.0.1:${victimAlive ? victim.port : survivor.port}${CHANNEL_PATH}`;
    for (let i = 0; i < 4; i++) recovering.push(new RecoveringChannelClient(url, 'stream'));
    await Promise.all(recovering.map((c) => c.start()));
    const pub = await connectChannels(survivor.port);
    clients.push(pub);
    const acked: number[] = [];
    const publishing = (async () => {
      for (let i = 0; i < 60; i++) acked.push(await publish(pub, 'stream', i));
    })();
    await until(() => acked.length >= 20, { timeoutMs: 20_000, what: '20 acks' });
    victimAlive = false;
    victim.child.kill('SIGKILL');
    await publishing;
    for (const c of recovering) {
      await c.until(() => c.position?.offset === acked.at(-1), timeoutMs, 'every acked message');
      const epoch = c.position!.epoch;
      assert.deepEqual(c.offsets(epoch), acked, 'every acknowledged message once, in order');
      assert.equal(c.duplicates, 0);
      assert.ok(c.recoveries.length >= 1 && c.recoveries.every((r) => r), `recovered every time: ${c.recoveries}`);
      assert.equal(c.node, 'k2');
    }
  } finally {
    for (const c of recovering) c.stop();
    closeAll(clients);
    await Promise.all(procs.map((p) => p.stop('SIGKILL')));
  }
}
