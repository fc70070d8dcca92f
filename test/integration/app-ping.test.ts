/**
 * The channel protocol's own ping on a real node (docs/protocol.md, `ping`): `connected` announces
 * the interval (--heartbeat), a /ws/v1 socket nothing was written to for a whole interval gets
 * `{"type":"ping"}` once per interval, one that receives messages gets none, /ws/echo never gets
 * one, and without --heartbeat there is neither the announcement nor the frame. The SDK's side:
 * test/unit/client-sdk-liveness.test.ts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { connectChannels, frames, publish, subscribe } from '../helpers/channels.js';
import { closeNodes, startNode, wsUrl } from '../helpers/nodes.js';
import { connect } from '../helpers/ws-client.js';

const PING = '{"type":"ping"}';

test('an idle /ws/v1 socket gets a ping frame every --heartbeat interval; a busy one and /ws/echo get none', async () => {
  const heartbeat = 1;
  const node = await startNode({ heartbeat });
  const idle = await connectChannels(node);
  const busy = await connectChannels(node);
  const publisher = await connectChannels(node);
  const echo = await connect(wsUrl(node));
  const pingTimes: number[] = [];
  let wsPings = 0;
  idle.ws.on('ping', () => wsPings++);
  idle.ws.on('message', (data: Buffer) => {
    if (data.toString() === PING) pingTimes.push(Date.now());
  });
  let publishing = true;
  try {
    const connected = frames(idle).find((f) => f.type === 'connected')!;
    assert.equal(connected.ping, heartbeat, 'connected announces the interval in seconds');
    await subscribe(busy, 'feed');
    // The busy socket gets a message about every 100 ms: something is written to it in every half interval.
    let sent = 0;
    const loop = async (): Promise<void> => {
      while (publishing) {
        await publish(publisher, 'feed', { n: ++sent });
        await new Promise((r) => setTimeout(r, 100));
      }
    };
    const publishes = loop();
    await idle.until((m) => m.filter((t) => t === PING).length >= 6, 15_000, 'six pings to the idle socket');
    publishing = false;
    await publishes;
    // The wheel looks at a socket twice per interval (ticks of 100 ms) and pings after two quiet halves: never two pings within one interval.
    for (let i = 1; i < pingTimes.length; i++) {
      const gap = pingTimes[i]! - pingTimes[i - 1]!;
      assert.ok(gap >= heartbeat * 1000 - 100, `pings one interval apart (gap ${gap} ms)`);
    }
    // The WebSocket pings (every other interval to a client that answers) are not frames the
    // client's JavaScript sees, so they do not stand in for the ping frame.
    assert.ok(wsPings < pingTimes.length, `a ping frame every interval, WebSocket pings or not (${pingTimes.length} ping frames, ${wsPings} WebSocket pings)`);
    assert.ok(sent >= 10, `the feed kept going (${sent} messages)`);
    assert.equal(busy.messages.filter((t) => t === PING).length, 0, 'the busy socket got no ping');
    assert.ok(frames(busy).filter((f) => f.type === 'message').length >= 10);
    assert.equal(echo.messages.length, 0, '/ws/echo gets no ping frame');
    assert.equal(idle.closeCode, undefined);
    assert.equal(echo.closeCode, undefined);
  } finally {
    publishing = false;
    for (const c of [idle, busy, publisher, echo]) c.close();
    await closeNodes([node]);
  }
});

test('without --heartbeat, connected announces no ping', async () => {
  const node = await startNode({ heartbeat: 0 });
  const client = await connectChannels(node);
  try {
    const connected = frames(client).find((f) => f.type === 'connected')!;
    assert.equal('ping' in connected, false);
  } finally {
    client.close();
    await closeNodes([node]);
  }
});
