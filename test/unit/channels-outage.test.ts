import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { MemoryBus } from '../../src/brokers/memory/bus.js';
import { CloseCode } from '../../src/errors.js';
import { connectChannels, messagesOf, publish, subscribe, waitMessages } from '../helpers/channels.js';
import { closeNodes, startNodes } from '../helpers/nodes.js';
import { closeAll } from '../helpers/ws-client.js';

test('after its bus connection comes back, a node delivers what its subscribers missed, in order, once', async () => {
  const [a, b] = await startNodes(2);
  const p = await connectChannels(a!);
  const s = await connectChannels(b!);
  try {
    await subscribe(s, 'outage');
    for (let i = 1; i <= 2; i++) await publish(p, 'outage', i);
    await waitMessages(s, 'outage', 2);
    (b!.bus as MemoryBus).disconnect();
    for (let i = 3; i <= 5; i++) await publish(p, 'outage', i);
    (b!.bus as MemoryBus).reconnect();
    for (let i = 6; i <= 8; i++) await publish(p, 'outage', i);
    await waitMessages(s, 'outage', 8);
    await publish(p, 'outage', 'end');
    await waitMessages(s, 'outage', 9);
    assert.deepEqual(messagesOf(s, 'outage').map((m) => m.offset), [1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert.equal(s.closeCode, undefined, 'the subscriber stayed connected');
  } finally {
    closeAll([p, s]);
    await closeNodes([a!, b!]);
  }
});

test('when history cannot fill an outage, subscribers are closed with 4510 and recovery says recovered:false', async () => {
  const [a, b] = await startNodes(2, { historySize: 2 });
  const p = await connectChannels(a!);
  const s = await connectChannels(b!);
  try {
    const { epoch } = await subscribe(s, 'long');
    await publish(p, 'long', 1);
    await waitMessages(s, 'long', 1);
    (b!.bus as MemoryBus).disconnect();
    for (let i = 2; i <= 6; i++) await publish(p, 'long', i);
    (b!.bus as MemoryBus).reconnect();
    assert.equal(await s.waitClose(), CloseCode.RESUBSCRIBE);
    const again = await connectChannels(b!);
    const reply = await subscribe(again, 'long', { offset: 1, epoch: epoch as string });
    assert.equal(reply.recovered, false);
    assert.equal(reply.offset, 6);
    again.close();
  } finally {
    closeAll([p, s]);
    await closeNodes([a!, b!]);
  }
});
