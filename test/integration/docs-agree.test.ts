/**
 * The docs cannot drift from the software (issue 26, item 4): every import path of the package
 * that README.md and docs/*.md show resolves through package.json's `exports` (Node's own
 * resolution of the package's self-reference, as an app's `import` does), and every `fanout …`
 * command line they show names a command whose `--help` answers, with only flags that command's
 * `--help` lists. The checks run on made-up drift first, so a check that catches nothing fails.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { FANOUT_MAIN } from '../../harness/fanout-process.js';
import { commandLines, flagsOf, helpFlags, importPaths } from '../helpers/docs-code.js';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
/** The commands `fanout --help` lists (read in `before`), so a new command is checked as soon as it exists. */
const COMMANDS: string[] = [];
/** What `fanout` takes in a command's place besides the commands: its own options, and the docs' placeholder. */
const NOT_COMMANDS = new Set(['--help', '-h', 'help', '--version', '-v', '<command>']);

/** Each command's flags, as its `--help` lists them. */
const flagsByCommand = new Map<string, Set<string>>();

before(async () => {
  const { stdout: main } = await run(process.execPath, [FANOUT_MAIN, '--help']);
  const listed = /^Commands:\n((?:  \S.*\n?)+)/m.exec(main)?.[1] ?? '';
  COMMANDS.push(...listed.split('\n').map((l) => l.trim().split(/\s/)[0]!).filter(Boolean));
  assert.ok(COMMANDS.includes('serve') && COMMANDS.length >= 4, `commands read from fanout --help: ${COMMANDS.join(', ')}`);
  for (const command of COMMANDS) {
    const { stdout } = await run(process.execPath, [FANOUT_MAIN, command, '--help']);
    flagsByCommand.set(command, new Set([...helpFlags(stdout), '--help']));
  }
});

/** The docs a user reads: README.md and docs/*.md. */
function docs(): Array<{ name: string; text: string }> {
  const names = ['README.md', ...readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
  return names.map((name) => ({ name, text: readFileSync(join(ROOT, name), 'utf8') }));
}

/** What in `text` disagrees with the package: one line per problem, naming the file. */
function problems(name: string, text: string): string[] {
  const found: string[] = [];
  for (const path of importPaths(text)) {
    try {
      const file = fileURLToPath(import.meta.resolve(path));
      if (!existsSync(file)) found.push(`${name}: import '${path}' resolves to ${file}, which does not exist (run npm run build?)`);
    } catch (err) {
      found.push(`${name}: import '${path}' does not resolve: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
  }
  const serve = flagsByCommand.get('serve')!;
  for (const line of commandLines(text)) {
    if (NOT_COMMANDS.has(line.command)) continue;
    const own = flagsByCommand.get(line.command);
    if (!own) {
      found.push(`${name}: \`${line.text}\`: no command ${line.command} (fanout has ${COMMANDS.join(', ')})`);
      continue;
    }
    const { before, after } = flagsOf(line);
    // `fanout cluster` takes serve flags before `--` too, and passes everything after it to serve;
    // `fanout config print` takes serve flags, to print the configuration they make.
    const allowedBefore = line.command === 'cluster' || line.command === 'config' ? new Set([...own, ...serve]) : own;
    for (const flag of before) if (!allowedBefore.has(flag)) found.push(`${name}: \`${line.text}\`: ${flag} is not a flag of fanout ${line.command}`);
    for (const flag of after) if (!serve.has(flag)) found.push(`${name}: \`${line.text}\`: ${flag} (after --) is not a flag of fanout serve`);
  }
  return found;
}

test('the checks catch drift: a deep import, a made-up flag, a serve flag misplaced, a made-up command', () => {
  const drifted = [
    "In Node: `import { FanoutClient } from 'fanout/dist/client/index.js'`.",
    '```sh',
    "npx fanout serve --presense 'chat:*'   # a typo of --presence",
    'fanout cluster --nodes 2 -- --balance leastconn',
    'fanout launch --nodes 2',
    '```',
  ].join('\n');
  assert.deepEqual(problems('drift.md', drifted), [
    "drift.md: import 'fanout/dist/client/index.js' does not resolve: ERR_PACKAGE_PATH_NOT_EXPORTED",
    "drift.md: `fanout serve --presense 'chat:*'`: --presense is not a flag of fanout serve",
    'drift.md: `fanout cluster --nodes 2 -- --balance leastconn`: --balance (after --) is not a flag of fanout serve',
    `drift.md: \`fanout launch --nodes 2\`: no command launch (fanout has ${COMMANDS.join(', ')})`,
  ]);
  // And what is right passes: the exported paths, synopsis lines, serve flags before `--`.
  const right = [
    '```js',
    "import { createNode } from 'fanout';",
    "const { FanoutClient } = await import('fanout/client');",
    '```',
    'Run `fanout cluster --nodes 2 --presence chat:* -- --drain-delay 0` or',
    '`fanout haproxy-config --servers host:port [--balance leastconn|roundrobin] > haproxy.cfg`.',
  ].join('\n');
  assert.deepEqual(problems('right.md', right), []);
});

test('README.md and docs/*.md: every import path resolves through the package exports, every fanout command line has only flags its --help lists', () => {
  const all = docs();
  const seen = { imports: 0, commands: 0 };
  const found: string[] = [];
  for (const { name, text } of all) {
    seen.imports += importPaths(text).length;
    seen.commands += commandLines(text).length;
    found.push(...problems(name, text));
  }
  assert.deepEqual(found, []);
  // The docs do show the package's imports and many commands: the extraction read them.
  assert.ok(seen.imports >= 2, `import paths found: ${seen.imports}`);
  assert.ok(seen.commands >= 20, `command lines found: ${seen.commands}`);
});

test('every command the docs name answers --help with exit 0', async () => {
  const named = new Set(docs().flatMap(({ text }) => commandLines(text).map((l) => l.command)).filter((c) => !NOT_COMMANDS.has(c)));
  assert.deepEqual([...named].sort(), [...COMMANDS].sort(), 'the docs show every command');
  for (const command of named) {
    const { stdout } = await run(process.execPath, [FANOUT_MAIN, command, '--help']);
    assert.match(stdout, new RegExp(`^Usage: fanout ${command}`));
  }
});
