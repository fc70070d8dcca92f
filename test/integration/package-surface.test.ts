// The package as a user installs it: `fanout` (run a node from code) and `fanout/client` (the
// SDK), with types that compile under `tsc --strict`, and nothing else reachable by deep import.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
const TSC = join(ROOT, 'node_modules/typescript/bin/tsc');
let app: string;

before(() => {
  // An app folder with the package linked in as a dependency, as `npm install fanout` would.
  app = mkdtempSync(join(tmpdir(), 'fanout-app-'));
  mkdirSync(join(app, 'node_modules'));
  symlinkSync(ROOT, join(app, 'node_modules/fanout'), 'dir');
  symlinkSync(join(ROOT, 'node_modules/@types'), join(app, 'node_modules/@types'), 'dir');
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', type: 'module', private: true }));
});
after(() => rmSync(app, { recursive: true, force: true }));

test('a TypeScript app importing fanout/client and fanout compiles with tsc --strict', async () => {
  writeFileSync(
    join(app, 'app.ts'),
    `import { FanoutClient, shouldReconnect, type HistoryResult, type Json } from 'fanout/client';
import { createConfig, createNode, CloseCode, type FanoutNode } from 'fanout';

const client = new FanoutClient({ url: 'ws://localhost:3000/ws/v1' });
const room = client.subscribe('room', { onMessage: (data: Json, { offset }) => console.log(offset, data) });
const page: Promise<HistoryResult> = room.history({ limit: 10 });
const again: boolean = shouldReconnect(CloseCode.SLOW_CONSUMER);
const node: FanoutNode = createNode({ config: createConfig({ port: 0 }) });
export { page, again, node };
`,
  );
  try {
    await run(process.execPath, [TSC, '--strict', '--noEmit', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022', '--skipLibCheck', 'app.ts'], { cwd: app });
  } catch (err) {
    assert.fail(`tsc --strict failed:\n${(err as { stdout?: string }).stdout ?? String(err)}`);
  }
});

test('an app starts a node from code with the package export, and deep imports are refused', async () => {
  writeFileSync(
    join(app, 'start.mjs'),
    `import { createConfig, createNode } from 'fanout';
const node = createNode({ config: createConfig({ port: 0, host: '127.0.0.1' }) });
await node.start();
const res = await fetch('http://127.0.0.1:' + node.address.port + '/healthz');
console.log(JSON.stringify({ status: res.status, body: await res.json() }));
await node.close();
let deep = 'allowed';
try { await import('fanout/dist/src/node/outbox.js'); } catch (err) { deep = err.code; }
console.log(JSON.stringify({ deep }));
`,
  );
  const { stdout } = await run(process.execPath, ['start.mjs'], { cwd: app });
  const [health, deep] = stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.equal(health!.status, 200);
  assert.equal((health!.body as { status: string }).status, 'ok');
  assert.equal(deep!.deep, 'ERR_PACKAGE_PATH_NOT_EXPORTED');
});

test('the tarball (npm pack): LICENSE, README, the CLI, both entry points with types, and no source maps without their sources', async () => {
  const { stdout } = await run('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: ROOT, maxBuffer: 16 * 1024 * 1024 });
  const files = new Set(((JSON.parse(stdout) as Array<{ files: Array<{ path: string }> }>)[0]!.files).map((f) => f.path));
  for (const path of ['LICENSE', 'README.md', 'package.json', 'dist/src/cli/main.js', 'dist/src/index.js', 'dist/src/index.d.ts', 'dist/client/index.js', 'dist/client/index.d.ts', 'public/index.html']) {
    assert.ok(files.has(path), `${path} is in the tarball`);
  }
  // A source map is useful only with the sources it points at: every map shipped has them all
  // (package.json leaves the maps out, as it ships no sources).
  for (const map of [...files].filter((f) => f.endsWith('.map'))) {
    const { sources } = JSON.parse(readFileSync(join(ROOT, map), 'utf8')) as { sources: string[] };
    for (const source of sources) {
      const path = posix.normalize(posix.join(posix.dirname(map), source));
      assert.ok(files.has(path), `${map} points at ${path}, which the tarball does not have`);
    }
  }
  // Only the product: no tests, benchmark or harness.
  assert.deepEqual([...files].filter((f) => /^dist\/(test|bench|harness)\//.test(f)), []);
  assert.match(readFileSync(join(ROOT, 'LICENSE'), 'utf8'), /^MIT License/);
});
