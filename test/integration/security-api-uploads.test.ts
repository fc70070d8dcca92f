import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { after, before, test } from 'node:test';
import type { FanoutNode } from '../../src/app.js';
import { startNode } from '../helpers/nodes.js';

const KEY = 'upload-key';
const OFFERED = 100 * 1024 * 1024;
let node: FanoutNode;

before(async () => {
  node = await startNode({ apiKey: KEY, maxPayload: 65536 });
});
after(() => node.close());

interface Upload {
  readonly status: number | undefined;
  /** Body bytes the node's side of the connection took before it closed. */
  readonly sent: number;
}

/**
 * Sends a POST /api/publish with `headers` and then body bytes as fast as the connection takes
 * them, up to 100 MB, until the node closes the connection; reports the answer's status.
 */
function upload(headers: string, chunked: boolean): Promise<Upload> {
  return new Promise((resolve) => {
    const socket: Socket = connect(node.address.port, '127.0.0.1');
    let response = '';
    let sent = 0;
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      socket.destroy();
      const status = /^HTTP\/1\.1 (\d{3})/.exec(response)?.[1];
      resolve({ status: status === undefined ? undefined : Number(status), sent });
    };
    socket.on('data', (d) => (response += d.toString('latin1')));
    socket.on('error', finish);
    socket.on('close', finish);
    const chunk = Buffer.alloc(64 * 1024, 'a');
    const framed = chunked ? Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n')]) : chunk;
    const pump = (): void => {
      while (!done && sent < OFFERED) {
        sent += chunk.length;
        if (!socket.write(framed)) return void socket.once('drain', pump);
      }
      if (!done) socket.end(chunked ? '0\r\n\r\n' : '');
    };
    socket.once('connect', () => {
      socket.write(`POST /api/publish HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n${headers}\r\n`);
      pump();
    });
  });
}

test('an upload without the API key is answered 401 and cut off, not read to the end', async () => {
  const result = await upload('Transfer-Encoding: chunked\r\n', true);
  assert.equal(result.status, 401);
  assert.ok(result.sent < OFFERED / 4, `the node took ${result.sent} of ${OFFERED} bytes`);
});

test('a declared body over --max-payload is answered 413 before the key is even looked at, and not read', async () => {
  for (const auth of ['', `Authorization: Bearer ${KEY}\r\n`]) {
    const result = await upload(`${auth}Content-Length: ${OFFERED}\r\n`, false);
    assert.equal(result.status, 413, auth || 'no key');
    assert.ok(result.sent < OFFERED / 4, `the node took ${result.sent} of ${OFFERED} bytes`);
  }
});

test('a chunked body with the key is cut off at --max-payload with 413', async () => {
  const result = await upload(`Authorization: Bearer ${KEY}\r\nTransfer-Encoding: chunked\r\n`, true);
  assert.equal(result.status, 413);
  assert.ok(result.sent < OFFERED / 4, `the node took ${result.sent} of ${OFFERED} bytes`);
});

test('the node still serves after refused uploads', async () => {
  const res = await fetch(`http://127.0.0.1:${node.address.port}/api/publish`, {
    method: 'POST',
    headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify({ channel: 'c', data: 1 }),
  });
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { offset: 1 });
});
