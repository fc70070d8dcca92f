/**
 * Behind HAProxy (`timeout tunnel 1h` in the generated config), a peer that vanished without
 * closing is only found by the node's heartbeat: the node pings through the proxy, gets no pong,
 * and cuts the connection, which HAProxy passes on to the client side. A live client, whose
 * WebSocket library answers pings, stays.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { forkFanoutServe } from '../../harness/fanout-process.js';
import { startHaproxy } from '../../harness/haproxy.js';
import { untilEvent } from '../../harness/wait.js';
import { scrapeUntil } from '../helpers/metrics.js';
import { rawUpgrade } from '../helpers/raw-ws.js';
import { expectSilentPeerCutLiveStays } from '../helpers/security.js';
import { connect } from '../helpers/ws-client.js';

test('through HAProxy, --heartbeat cuts a peer that never answers pings, and a live one stays', async () => {
  const node = await forkFanoutServe(['--heartbeat', '0.3']);
  const proxy = await startHaproxy([node.port]);
  const live = await connect(`ws://127.0.0.1:${proxy.port}/ws/echo`);
  const dead = await rawUpgrade(proxy.port);
  try {
    assert.equal(dead.response?.status, 101);
    // Several heartbeat rounds pass first, so the live client has answered pings through HAProxy.
    for (let i = 0; i < 3; i++) await untilEvent(live.ws, 'ping', { timeoutMs: 5000, what: `heartbeat ping ${i + 1} through HAProxy` });
    // The raw peer reads the pings HAProxy forwards but never sends a pong.
    await expectSilentPeerCutLiveStays(dead, live);
    await scrapeUntil(`http://127.0.0.1:${node.port}`, (s) => s.value('fanout_connections') === 1, 5000);
  } finally {
    live.close();
    dead.destroy();
    await proxy.stop();
    await node.stop();
  }
});
