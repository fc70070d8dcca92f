/**
 * A full `npm run bench -- --out .` rewrites BENCHMARKS.md: the sections it does not write (the
 * fault run's, the soak's, delta compression, notes written by hand) must come through whole, and
 * its own must not appear twice. Checked on the committed report and its benchmarks.json.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { keepSections, ownedByReport, sections } from '../../bench/report-sections.js';
import { markdown, type BenchRun } from '../../bench/report.js';

const root = new URL('../../../', import.meta.url);
const committed = readFileSync(new URL('BENCHMARKS.md', root), 'utf8');
const run = JSON.parse(readFileSync(new URL('benchmarks.json', root), 'utf8')) as BenchRun;
const headings = (doc: string) => sections(doc).map((s) => s.heading).filter(Boolean);

test('every section heading the report writes is one it knows it owns', () => {
  const written = headings(markdown({ ...run, skipped: [{ system: 'x', reason: 'y' }] }));
  assert.ok(written.length >= 6, written.join(' / '));
  for (const h of written) assert.ok(ownedByReport(h), `${h} is written by bench/report.ts but not in REPORT_HEADINGS: a rerun would keep the old copy too`);
});

test('a rerun keeps the sections other runs and people wrote, whole and in order, after its own', () => {
  const foreign = sections(committed).filter((s) => !ownedByReport(s.heading));
  const names = foreign.map((s) => s.heading);
  for (const want of ['## Delivery under faults', '## Delta compression']) assert.ok(names.includes(want), `the committed report has ${want}`);
  const generated = markdown(run);
  const next = keepSections(committed, generated);
  assert.ok(next.startsWith(generated.trimEnd()), 'the fresh report comes first, unchanged');
  for (const s of foreign) {
    assert.equal(next.split(s.text.trimEnd()).length - 1, 1, `${s.heading} is there once, word for word`);
  }
  // Same order as before, and no section of the report twice.
  const after = headings(next);
  assert.deepEqual(after.filter((h) => !ownedByReport(h)), names);
  assert.equal(new Set(after).size, after.length, after.join(' / '));
  // Running again on its own output changes nothing.
  assert.equal(keepSections(next, generated), next);
});

test('a section the new run does not write is dropped; headings inside code blocks are not sections', () => {
  const old = [
    '# Benchmarks', '', 'old intro', '',
    '## Targets at 500 clients × 100 messages/s (50.0k deliveries/s offered)', '', 'old targets', '',
    '## Not run', '', '- something old', '',
    '## Notes', '', '```md', '## not a heading', '```', '', '### A subsection', 'kept with its section', '',
  ].join('\n');
  const generated = '# Benchmarks\n\nnew intro\n\n## Targets at 2000 clients × 100 messages/s (200.0k deliveries/s offered)\n\nnew targets\n';
  const next = keepSections(old, generated);
  assert.doesNotMatch(next, /old intro|old targets|something old|## Not run/);
  assert.match(next, /## Notes\n\n```md\n## not a heading\n```\n\n### A subsection\nkept with its section\n$/);
  assert.equal(keepSections(undefined, generated), generated);
});

test('the Pusher rows sit in the Channels section, beside /ws/v1, with their ratio against it; the broadcast table has none', () => {
  // The committed run may have measured the Pusher lane itself: start from it without those rows.
  const base = { ...run, points: run.points.filter((p) => p.system !== 'pusher') };
  const channels = base.points.filter((p) => p.system === 'channels' && p.publishVia === 'http');
  assert.ok(channels.length > 0, 'the committed run has /ws/v1 rows published over HTTP');
  // The /ws/v1 HTTP points, as if the Pusher lane had measured twice their CPU per delivery.
  const pusher = channels.map((p) => ({ ...p, system: 'pusher' as const, cpuPerDelivery: p.cpuPerDelivery * 2 }));
  const doc = markdown({ ...base, points: [...base.points, ...pusher] });
  const byHeading = new Map(sections(doc).map((s) => [s.heading, s.text]));
  const section = [...byHeading.entries()].find(([h]) => h.startsWith('## Channels ('))?.[1] ?? '';
  const broadcast = [...byHeading.entries()].find(([h]) => h.startsWith('## Broadcast ('))?.[1] ?? '';
  assert.equal(section.split('\n').filter((l) => l.startsWith('| Fanout Pusher /app/{key} (2 nodes, Redis), publisher via POST /apps/{id}/events')).length, pusher.length);
  assert.doesNotMatch(broadcast, /Pusher/);
  assert.match(section, /### Pusher against \/ws\/v1, same run/);
  const first = channels[0]!;
  assert.match(section, new RegExp(`\\| ${first.rate} \\| 2\\.00× \\(${(first.cpuPerDelivery * 2).toFixed(2)} vs ${first.cpuPerDelivery.toFixed(2)} µs\\) \\|`));
  // Without Pusher points, neither the sentence nor the subsection.
  assert.doesNotMatch(markdown(base), /Pusher/);
});
