/**
 * Keeping what the bench does not write: BENCHMARKS.md also holds sections written by other runs
 * (`--faults` and `--soak` put theirs in, `npm run bench:delta`'s is pasted) and by hand. A full
 * `npm run bench -- --out .` rewrites the sections it owns ({@link REPORT_HEADINGS}) and carries
 * every other `## ` section of the old file over, whole (its `###` subsections with it), after its
 * own and in their old order, so a rerun loses nothing it did not measure.
 */

/**
 * Headings of the sections bench/report.ts writes, by how they start (some carry the run's
 * figures). The title and what comes before the first `## ` are the report's too.
 */
export const REPORT_HEADINGS = ['## Targets at ', '## Broadcast (', '## Channels (', '## Brokers', '## Channel history logs', '## Connection scale', '## Not run'] as const;

export interface Section {
  /** The `## ` line, or '' for what comes before the first one. */
  readonly heading: string;
  /** The heading line and everything up to the next `## ` line (not inside a code fence). */
  readonly text: string;
}

/** `doc` cut at its level-two headings; fenced code blocks are not looked into. */
export function sections(doc: string): Section[] {
  const out: { heading: string; lines: string[] }[] = [{ heading: '', lines: [] }];
  let fenced = false;
  for (const line of doc.split('\n')) {
    if (/^(```|~~~)/.test(line)) fenced = !fenced;
    if (!fenced && line.startsWith('## ')) out.push({ heading: line.trimEnd(), lines: [] });
    out.at(-1)!.lines.push(line);
  }
  return out.map((s) => ({ heading: s.heading, text: s.lines.join('\n') }));
}

/** Whether the bench's report writes the section under `heading`. */
export function ownedByReport(heading: string): boolean {
  return heading === '' || REPORT_HEADINGS.some((h) => heading.startsWith(h));
}

/**
 * `generated` (a fresh BENCHMARKS.md) followed by the sections of `previous` (the file it
 * replaces) that the report does not write and `generated` does not have, each whole, in order.
 */
export function keepSections(previous: string | undefined, generated: string): string {
  if (!previous) return generated;
  const have = new Set(sections(generated).map((s) => s.heading));
  const kept = sections(previous).filter((s) => !ownedByReport(s.heading) && !have.has(s.heading));
  if (kept.length === 0) return generated;
  return `${generated.trimEnd()}\n\n${kept.map((s) => s.text.trimEnd()).join('\n\n')}\n`;
}
