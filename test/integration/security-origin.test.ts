/** The Origin check on a node directly: 403 before the upgrade for foreign origins. */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { MemoryBroker } from '../../src/brokers/memory/bus.js';
import { createConfig } from '../../src/config/load.js';
import { createNode, type FanoutNode } from '../../src/app.js';
import { closeNodes, startNode, wsUrl } from '../helpers/nodes.js';
import { handshake, rawConnect } from '../helpers/raw-ws.js';
import { captureLogger } from '../helpers/security.js';
import { connect, refusedStatus } from '../helpers/ws-client.js';

const nodes: FanoutNode[] = [];
after(() => closeNodes(nodes));

async function opens(url: string, origin?: string): Promise<boolean> {
  const client = await connect(url, origin === undefined ? {} : { origin });
  client.close();
  return true;
}

test('default: same origin and no-Origin clients pass; any other origin gets 403 with no 101', async () => {
  const n = await startNode();
  nodes.push(n);
  const port = n.address.port;
  const url = wsUrl(n);
  assert.equal(await opens(url, `http://127.0.0.1:${port}`), true);
  assert.equal(await opens(url), true, 'no Origin header (non-browser client)');
  for (const origin of ['http://evil.example', `http://127.0.0.1:${port + 1}`, `http://127.0.0.1:${port}.evil.example`, `http://localhost.evil.example:${port}`, 'null']) {
    assert.equal(await refusedStatus(url, { origin }), 403, origin);
  }
  const peer = await rawConnect(port);
  peer.write(handshake('/ws/echo', ['Origin: http://evil.example'], `127.0.0.1:${port}`));
  await peer.until(() => peer.response !== undefined);
  assert.equal(peer.response!.status, 403);
  await peer.closed();
  assert.equal(peer.opcodes.length, 0, 'no WebSocket frame after a refusal');
  assert.equal(n.clientCount, 0);
});

test('--allowed-origins: exactly the listed origins', async () => {
  const n = await startNode({ allowedOrigins: 'http://good.example,https://app.example:8443' });
  nodes.push(n);
  const url = wsUrl(n);
  assert.equal(await opens(url, 'http://good.example'), true);
  assert.equal(await opens(url, 'https://app.example:8443'), true);
  for (const origin of ['http://good.example.evil.example', 'http://evil.example', 'https://good.example', `http://127.0.0.1:${n.address.port}`]) {
    assert.equal(await refusedStatus(url, { origin }), 403, origin);
  }
});

test('--allowed-origins * admits any origin and warns in the log', async () => {
  const { logger, lines } = captureLogger();
  const n = createNode({ config: createConfig({ port: 0, host: '127.0.0.1', heartbeat: 0, allowedOrigins: '*' }), logger, broker: new MemoryBroker() });
  await n.start();
  nodes.push(n);
  assert.equal(await opens(wsUrl(n), 'http://anything.example'), true);
  assert.ok(lines.some((l) => l['level'] === 40 && String(l['msg']).includes('--allowed-origins is *')));
});
