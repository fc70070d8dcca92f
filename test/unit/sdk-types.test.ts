/**
 * The SDK's types in ordinary strict TypeScript: `tsc --strict --noEmit` on the fixtures in
 * test/types/ (not part of the build), which import the SDK as an app does (`fanout/client`, the
 * package's exports, so the declarations in dist/ are what is checked: run after the build).
 * - sdk-usage.ts must compile clean: interfaces go through `publish<T>()`, `subscribe<T>()` types
 *   onMessage, history and publish, `presence()` is a plain array; its `@ts-expect-error` lines
 *   (functions, bigints, Dates, a wrong shape on a typed subscription) must each be an error.
 * - sdk-refused.ts must fail on exactly its lines marked `// refused`: the check can fail.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { test } from 'node:test';

const ROOT = process.cwd();
const TSC = createRequire(join(ROOT, 'package.json')).resolve('typescript/bin/tsc');
const FLAGS = ['--strict', '--noEmit', '--pretty', 'false', '--target', 'es2022', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--lib', 'es2022,dom'];

function tsc(fixture: string): { status: number | null; output: string } {
  const result = spawnSync(process.execPath, [TSC, ...FLAGS, join('test', 'types', fixture)], { cwd: ROOT, encoding: 'utf8' });
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

test('ordinary TypeScript with interfaces compiles against the SDK, and what JSON cannot carry is refused', () => {
  const { status, output } = tsc('sdk-usage.ts');
  assert.equal(output.trim(), '', 'no error, no unused @ts-expect-error');
  assert.equal(status, 0);
});

test('the refused fixture fails, on each marked line and no other', () => {
  const { status, output } = tsc('sdk-refused.ts');
  assert.notEqual(status, 0);
  const lines = readFileSync(join(ROOT, 'test', 'types', 'sdk-refused.ts'), 'utf8').split('\n');
  const marked = lines.flatMap((line, i) => (/\/\/ refused$/.test(line) ? [i + 1] : []));
  const failed = [...new Set([...output.matchAll(/sdk-refused\.ts\((\d+),\d+\): error/g)].map((m) => Number(m[1])))];
  assert.ok(marked.length >= 4);
  assert.deepEqual(failed.sort((a, b) => a - b), marked, output);
});
