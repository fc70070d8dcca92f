// The browser-facing build is served from one place: the SDK and the protocol modules it imports,
// nothing else of dist/.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { FanoutNode } from '../../src/app.js';
import { httpUrl, startNode } from '../helpers/nodes.js';

let node: FanoutNode;
before(async () => {
  node = await startNode();
});
after(() => node.close());

async function get(path: string): Promise<{ status: number; type: string | null; body: string }> {
  const res = await fetch(httpUrl(node, path));
  return { status: res.status, type: res.headers.get('content-type'), body: await res.text() };
}

test('the SDK and the protocol modules it imports are served, as JavaScript', async () => {
  for (const path of ['/ws/client/index.js', '/ws/client/client.js', '/ws/src/protocol/codes.js', '/ws/src/protocol/frames.js']) {
    const { status, type } = await get(path);
    assert.equal(status, 200, path);
    assert.match(type ?? '', /^text\/javascript/, path);
  }
  // The SDK's own import of the registry resolves to a served file.
  assert.match((await get('/ws/client/client.js')).body, /from '\.\.\/src\/protocol\/codes\.js'/);
});

test('nothing else of the build is reachable: server code, tests, traversal, sources', async () => {
  for (const path of [
    '/ws/src/node/core.js',
    '/ws/src/config/schema.js',
    '/ws/src/protocol/../node/core.js',
    '/ws/client/..%2Fsrc%2Fnode%2Fcore.js',
    '/ws/src/protocol/codes.ts',
    '/ws/src/protocol/.hidden.js',
    '/ws/test/unit/demo-page.test.js',
  ]) {
    assert.equal((await get(path)).status, 404, path);
  }
});
