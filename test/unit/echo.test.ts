import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { connect as netConnect } from 'node:net';
import { CloseCode } from '../../src/errors.js';
import type { FanoutNode } from '../../src/app.js';
import { closeNodes, httpUrl, startNodes, wsUrl } from '../helpers/nodes.js';
import { closeAll, connect, refusedStatus, type TestClient } from '../helpers/ws-client.js';

let nodes: FanoutNode[];
before(async () => {
  nodes = await startNodes(3);
});
after(() => closeNodes(nodes));

test('a message sent on one node reaches every /ws/echo client on every node exactly once', async () => {
  const clients: TestClient[] = [];
  for (const node of nodes) for (let i = 0; i < 2; i++) clients.push(await connect(wsUrl(node)));
  try {
    clients[0]!.send('hello');
    clients[3]!.send('from node 2');
    for (const c of clients) {
      const got = await c.count(2);
      assert.deepEqual([...got].sort(), ['Received: from node 2', 'Received: hello']);
    }
    // Nothing more arrives: no duplicates from the bus loop-back.
    clients[5]!.send('marker');
    for (const c of clients) {
      await c.until((m) => m.includes('Received: marker'));
      assert.equal(c.messages.length, 3, `duplicates: ${JSON.stringify(c.messages)}`);
    }
  } finally {
    closeAll(clients);
  }
});

test('messages from one sender arrive in the order sent, on every node', async () => {
  const clients = await Promise.all(nodes.map((n) => connect(wsUrl(n))));
  try {
    const sent = Array.from({ length: 200 }, (_, i) => `seq ${i}`);
    for (const text of sent) clients[1]!.send(text);
    for (const c of clients) assert.deepEqual(await c.count(200), sent.map((t) => `Received: ${t}`));
  } finally {
    closeAll(clients);
  }
});

test('unicode and empty messages are echoed as sent', async () => {
  const [a, b] = await Promise.all([connect(wsUrl(nodes[0]!)), connect(wsUrl(nodes[2]!))]);
  try {
    a!.send('');
    a!.send('héllo wörld ✓ \u{1F680}');
    assert.deepEqual(await b!.count(2), ['Received: ', 'Received: héllo wörld ✓ \u{1F680}']);
  } finally {
    closeAll([a!, b!]);
  }
});

test('a binary message closes the echo socket with 1003', async () => {
  const c = await connect(wsUrl(nodes[0]!));
  c.ws.send(Buffer.from([1, 2, 3]), { binary: true });
  assert.equal(await c.waitClose(), CloseCode.UNSUPPORTED_DATA);
});

test('a message over --max-payload closes with 1009 and the node keeps serving', async () => {
  const c = await connect(wsUrl(nodes[0]!));
  c.send('x'.repeat(70_000));
  assert.equal(await c.waitClose(), CloseCode.MESSAGE_TOO_BIG);
  const again = await connect(wsUrl(nodes[0]!));
  again.send('still here');
  await again.until((m) => m.includes('Received: still here'));
  again.close();
});

test('an unknown WebSocket path is refused with 404 before the upgrade; a plain GET on a socket path gets 426', async () => {
  assert.equal(await refusedStatus(wsUrl(nodes[0]!, '/ws/nope')), 404);
  const res = await fetch(httpUrl(nodes[0]!, '/ws/echo'));
  assert.equal(res.status, 426);
  await res.arrayBuffer();
});

test('GET /ws serves the demo page with #message, #sendButton and #output; it names no host', async () => {
  const res = await fetch(httpUrl(nodes[0]!, '/ws'));
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /text\/html/);
  const html = await res.text();
  for (const id of ['message', 'sendButton', 'output']) assert.match(html, new RegExp(`id="${id}"`));
  assert.match(html, /location\.host/);
  assert.doesNotMatch(html, /localhost|127\.0\.0\.1/);
});

test('/healthz is 200; /readyz is 200 while running with the bus connected', async () => {
  const health = await fetch(httpUrl(nodes[1]!, '/healthz'));
  assert.equal(health.status, 200);
  assert.equal(((await health.json()) as { node: string }).node, 'n2');
  const ready = await fetch(httpUrl(nodes[1]!, '/readyz'));
  assert.equal(ready.status, 200);
  await ready.arrayBuffer();
});

test('a malformed handshake gets 400 and the node keeps serving', async () => {
  const reply = await new Promise<string>((resolve) => {
    const socket = netConnect(nodes[0]!.address.port, '127.0.0.1', () => socket.write('GET /ws/echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n'));
    let data = '';
    socket.on('data', (d) => (data += d.toString()));
    socket.on('close', () => resolve(data));
    socket.on('error', () => resolve(data));
  });
  assert.match(reply, /^HTTP\/1\.1 400/);
  const c = await connect(wsUrl(nodes[0]!));
  c.close();
});
