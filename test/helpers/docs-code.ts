/**
 * What the docs tell a user to type, read out of Markdown: the package's import paths and the
 * `fanout …` command lines, from fenced code blocks and inline code spans (prose is not read:
 * "a fanout exchange" is not a command). For test/integration/docs-agree.test.ts.
 */

/** Every piece of code in a Markdown text: each line of each fenced block (`\`-continued lines joined), and each inline span. */
export function codeOf(markdown: string): string[] {
  const pieces: string[] = [];
  const prose: string[] = [];
  let fence: string[] | undefined;
  for (const line of markdown.split('\n')) {
    if (/^\s*```/.test(line)) {
      if (fence) {
        pieces.push(...fence.join('\n').replace(/\\\n\s*/g, ' ').split('\n'));
        fence = undefined;
      } else {
        fence = [];
      }
      continue;
    }
    if (fence) fence.push(line);
    else prose.push(line);
  }
  // Inline spans may wrap onto the next line of a paragraph.
  for (const m of prose.join('\n').matchAll(/`([^`]+)`/g)) pieces.push(m[1]!.replace(/\s*\n\s*/g, ' '));
  return pieces;
}

/** The package's own import paths (`fanout`, `fanout/client`, …) named in `from '…'`, `import('…')`, `import '…'` or `require('…')`. */
export function importPaths(markdown: string): string[] {
  const paths = new Set<string>();
  for (const code of codeOf(markdown)) {
    for (const m of code.matchAll(/(?:\bfrom\s+|\bimport\s*\(\s*|\bimport\s+|\brequire\s*\(\s*)(['"])(fanout(?:\/[^'"]*)?)\1/g)) paths.add(m[2]!);
  }
  return [...paths];
}

/** A `fanout …` command line: the command word and the words after it, up to the end of the shell command. */
export interface CommandLine {
  readonly text: string;
  readonly command: string;
  readonly words: readonly string[];
}

/** Every `fanout …` (or `npx fanout …`, `node dist/src/cli/main.js …`) command line in the code of `markdown`. */
export function commandLines(markdown: string): CommandLine[] {
  const lines: CommandLine[] = [];
  for (const code of codeOf(markdown)) {
    // Where a shell command starts: the start of the code (after a `$ ` prompt and VAR=value
    // settings), or after `&&`, `;`, `|`, `(`; not a `fanout` that is another program's argument.
    const m = /(?:^\s*(?:\$\s+)?|[;&|(]\s*)(?:[A-Z_]+=\S*\s+)*(?:npx\s+)?(?:fanout|node\s+dist\/src\/cli\/main\.js)\s+(\S.*)$/.exec(code);
    if (!m) continue;
    const text = shellCommand(m[1]!);
    const [command, ...words] = text.split(/\s+/);
    // A command word, an option (--help, -v) or a placeholder (<command>); anything else is not a command line.
    if (!/^(?:[a-z][a-z-]*|--?[a-z]+|<[^>]+>)$/.test(command!)) continue;
    lines.push({ text: `fanout ${text}`, command: command!, words });
  }
  return lines;
}

/**
 * The command up to where the shell command ends: a comment, `&&`, `;`, a redirection, or a pipe
 * outside `[…]` (a synopsis writes alternatives as `[--balance leastconn|roundrobin]` and
 * `--nodes N | --node-ports …`, so only ` | ` followed by another program ends it).
 */
function shellCommand(rest: string): string {
  let depth = 0;
  for (let i = 0; i < rest.length; i++) {
    const c = rest[i]!;
    if (c === '[') depth++;
    else if (c === ']') depth--;
    else if (c === '#' && /\s/.test(rest[i - 1] ?? ' ')) return rest.slice(0, i).trim();
    else if (rest.startsWith('&&', i) || c === ';' || (c === '>' && rest[i - 1] === ' ')) return rest.slice(0, i).trim();
    else if (c === '|' && depth === 0 && rest[i - 1] === ' ' && !/^\|\s+--/.test(rest.slice(i))) return rest.slice(0, i).trim();
  }
  return rest.trim();
}

/** The `--flags` of a command line, split at a lone `--` (before: the command's own; after: passed on). */
export function flagsOf(line: CommandLine): { readonly before: string[]; readonly after: string[] } {
  const split = line.words.indexOf('--');
  const pick = (words: readonly string[]) =>
    words.map((w) => /^\[?(--[a-z][a-z0-9-]*)/.exec(w)?.[1]).filter((f): f is string => f !== undefined);
  return split === -1 ? { before: pick(line.words), after: [] } : { before: pick(line.words.slice(0, split)), after: pick(line.words.slice(split + 1)) };
}

/** The `--flags` a command's `--help` lists. */
export function helpFlags(help: string): Set<string> {
  return new Set([...help.matchAll(/(?:^|[\s[])(--[a-z][a-z0-9-]*)/g)].map((m) => m[1]!));
}
