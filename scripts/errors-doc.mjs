#!/usr/bin/env node
// docs/errors.md's tables, written from the registry (src/protocol/codes.ts, src/errors.ts):
// `npm run docs:errors` rewrites them after a build; test/unit/errors-registry.test.ts fails when
// the committed file differs. Each table sits between <!-- registry:NAME --> and <!-- /registry:NAME -->.
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const DOC = `${ROOT}docs/errors.md`;

const cell = (text) => String(text).replace(/\|/g, '\\|');
const table = (head, rows) => [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.map(cell).join(' | ')} |`)].join('\n');
const sentBy = { node: 'the node', ws: 'ws (the node\'s WebSocket library)', client: 'clients', nobody: 'nobody (no close frame)' };

/** The tables, keyed by marker name, from the compiled registry modules. */
export function renderTables({ CLOSE_CODES, ERROR_CODES, UPGRADE_STATUSES }, { FANOUT_ERRORS }) {
  return {
    'upgrade-statuses': table(
      ['status', 'retry', 'when'],
      Object.values(UPGRADE_STATUSES).map((r) => [r.status, r.retry ? 'yes' : 'no', r.when]),
    ),
    'close-codes': table(
      ['code', 'name', 'reconnect', 'sent by', 'when'],
      Object.entries(CLOSE_CODES).map(([name, r]) => [r.code, name.toLowerCase().replace(/_/g, ' '), r.reconnect ? 'yes' : 'no', sentBy[r.sentBy], r.when]),
    ),
    'error-codes': table(
      ['code', 'HTTP status', 'where', 'when'],
      Object.entries(ERROR_CODES).map(([code, r]) => [`\`${code}\``, r.status, { both: 'error frame and HTTP API', socket: 'error frame', api: 'HTTP API' }[r.where], r.when]),
    ),
    'command-errors': table(
      ['code', 'when'],
      Object.entries(FANOUT_ERRORS).map(([code, when]) => [`\`${code}\``, when]),
    ),
  };
}

/** `markdown` with every marked table replaced; throws when a marker is missing. */
export function applyTables(markdown, tables) {
  let out = markdown;
  for (const [name, body] of Object.entries(tables)) {
    const re = new RegExp(`(<!-- registry:${name} -->\\n)[\\s\\S]*?(<!-- /registry:${name} -->)`);
    if (!re.test(out)) throw new Error(`docs/errors.md has no <!-- registry:${name} --> … <!-- /registry:${name} --> block`);
    out = out.replace(re, (_m, open, close) => `${open}${body}\n${close}`);
  }
  return out;
}

/** The registry modules as built (run after `npm run build`). */
export async function loadRegistry() {
  const codes = await import(pathToFileURL(`${ROOT}dist/src/protocol/codes.js`).href);
  const errors = await import(pathToFileURL(`${ROOT}dist/src/errors.js`).href);
  return renderTables(codes, errors);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const current = readFileSync(DOC, 'utf8');
  const wanted = applyTables(current, await loadRegistry());
  if (process.argv.includes('--write')) {
    writeFileSync(DOC, wanted);
    console.log(current === wanted ? 'docs/errors.md: up to date' : 'docs/errors.md: tables rewritten from the registry');
  } else if (current !== wanted) {
    console.error('docs/errors.md differs from the registry: run npm run docs:errors');
    process.exit(1);
  }
}
