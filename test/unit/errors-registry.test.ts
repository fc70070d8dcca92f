// The registry drives the docs and is what the code sends: docs/errors.md's tables are the ones
// the registry renders; every code recorded as sent by the node is sent somewhere in src/, and
// src/ sends nothing that is not recorded.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { CLOSE_CODES, ERROR_CODES, UPGRADE_STATUSES } from '../../src/protocol/codes.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** The TypeScript sources of src/ but the registry itself, as one text. */
function sources(): string {
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else if (name.endsWith('.ts') && !path.endsWith(join('protocol', 'codes.ts'))) out.push(readFileSync(path, 'utf8'));
    }
  };
  walk(join(ROOT, 'src'));
  return out.join('\n');
}

test('docs/errors.md holds exactly the tables the registry renders (npm run docs:errors writes them)', async () => {
  const { applyTables, loadRegistry, DOC } = (await import(pathToFileURL(join(ROOT, 'scripts/errors-doc.mjs')).href)) as {
    applyTables: (md: string, tables: Record<string, string>) => string;
    loadRegistry: () => Promise<Record<string, string>>;
    DOC: string;
  };
  const current = readFileSync(DOC, 'utf8');
  assert.equal(current, applyTables(current, await loadRegistry()));
  for (const record of Object.values(CLOSE_CODES)) assert.match(current, new RegExp(`^\\| ${record.code} \\|`, 'm'));
});

test('every close code the registry says the node sends is sent in src/, and src/ sends no other', () => {
  const src = sources();
  for (const [name, record] of Object.entries(CLOSE_CODES)) {
    const used = new RegExp(`CloseCode\\.${name}\\b`).test(src);
    if (record.sentBy === 'node') assert.ok(used, `CloseCode.${name} (${record.code}) is documented as sent but never sent`);
  }
  for (const [, name] of src.matchAll(/CloseCode\.([A-Z_]+)/g)) assert.ok(name! in CLOSE_CODES, `CloseCode.${name} is not in the registry`);
  assert.doesNotMatch(src, /\.close\(\s*\d{4}\b/, 'close codes are named, not typed as numbers');
});

test('every error code is answered somewhere in src/, and refused upgrades use the registry', () => {
  const src = sources();
  for (const code of Object.keys(ERROR_CODES)) assert.match(src, new RegExp(`'${code}'`), `error code ${code} is documented but never answered`);
  for (const [, name] of src.matchAll(/UpgradeStatus\.([A-Z_]+)/g)) assert.ok(name! in UPGRADE_STATUSES, `UpgradeStatus.${name} is not in the registry`);
  assert.doesNotMatch(src, /reject\(socket, \d{3}/, 'refused upgrades name their status');
});
