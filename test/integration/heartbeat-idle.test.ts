/**
 * Heartbeats on a real node with real sockets: a client that keeps sending is never pinged (its
 * messages prove it alive), an idle client is pinged and, answering, stays, and a peer that never
 * answers is cut. The slicing itself is tested tick by tick in test/unit/heartbeat.test.ts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { untilEvent } from '../../harness/wait.js';
import { scrapeUntil } from '../helpers/metrics.js';
import { closeNodes, startNode, wsUrl } from '../helpers/nodes.js';
import { rawUpgrade } from '../helpers/raw-ws.js';
import { connect } from '../helpers/ws-client.js';

test('--heartbeat pings only sockets that went quiet: a talker is never pinged, an idle client answers and stays, a silent peer is cut', async () => {
  const node = await startNode({ heartbeat: 0.5 });
  const talker = await connect(wsUrl(node));
  const idle = await connect(wsUrl(node));
  const silent = await rawUpgrade(node.address.port);
  let talkerPings = 0;
  let idlePings = 0;
  talker.ws.on('ping', () => talkerPings++);
  idle.ws.on('ping', () => idlePings++);
  // The talker sends a message each time its previous one comes back, with a 10 ms pause:
  // it is heard from far more often than once per 500 ms interval.
  let sent = 0;
  let talking = true;
  const talk = () => {
    if (!talking) return;
    talker.send(`m${++sent}`);
  };
  talker.ws.on('message', (data: Buffer) => {
    if (data.toString() === `Received: m${sent}`) setTimeout(talk, 10);
  });
  try {
    talk();
    // The silent peer was pinged once and cut a whole interval later; by then each socket had
    // at least three visits, so the idle one was pinged too.
    await silent.until(() => silent.pings >= 1, 5000, 'a ping');
    await silent.until(() => silent.ended, 5000, 'the silent peer to be cut');
    if (idlePings === 0) await untilEvent(idle.ws, 'ping', { timeoutMs: 5000, what: 'a ping to the idle client' });
    assert.equal(silent.pings, 1, 'one ping, then the cut');
    assert.equal(talkerPings, 0, 'the talker was never pinged');
    assert.equal(idle.closeCode, undefined);
    assert.equal(talker.closeCode, undefined);
    assert.ok(sent > 10, `the talker kept talking (${sent} messages)`);
    // The idle client, which received the talker's echoes but sent only pongs, is still served.
    idle.send('still here');
    await idle.until((m) => m.includes('Received: still here'));
    await scrapeUntil(`http://127.0.0.1:${node.address.port}`, (s) => s.value('fanout_connections') === 2, 5000);
  } finally {
    talking = false;
    talker.close();
    idle.close();
    silent.destroy();
    await closeNodes([node]);
  }
});
