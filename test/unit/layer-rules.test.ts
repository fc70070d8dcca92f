/**
 * The layer rules bite: every forbidden import of .dependency-cruiser.cjs is written as a probe
 * file in the folder it is forbidden from, dependency-cruiser runs over the probes with the
 * project's own rules file, and each probe must be refused by the rule that names its import (and
 * an allowed import beside them by none). A rule whose pattern stops matching (a folder renamed,
 * a regular expression broken) fails here instead of silently letting everything through.
 *
 * Not probed: errors-and-logger-are-ground (its `from` is two exact files, src/errors.ts and
 * src/logger.ts, which a probe file cannot stand in for) and no-circular's own machinery beyond
 * one two-file loop.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
/** The repository: dist/test/unit/ is three floors below it. */
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

interface Probe {
  /** The probe file, relative to the repository. */
  readonly file: string;
  /** What it imports. */
  readonly imports: string;
  /** The rule that must refuse it; undefined: no rule may. */
  readonly rule: string | undefined;
}

const TAG = `layer-probe-${process.pid}`;
const probe = (folder: string, imports: string, rule: string | undefined, n = 0): Probe => ({
  file: `${folder}/__${TAG}-${n}.ts`,
  imports,
  rule,
});

const PROBES: readonly Probe[] = [
  probe('src/protocol', '../errors.js', 'protocol-is-the-floor'),
  probe('src/config', '../webhooks/webhooks.js', 'config-reads-no-runtime'),
  probe('src/config', '../brokers/memory/bus.js', 'config-reads-no-runtime', 1),
  probe('src/config', '../metrics.js', 'config-reads-no-runtime', 2),
  probe('src/stores', '../brokers/memory/bus.js', 'contracts-stand-apart'),
  probe('src/stores', '../node/core.js', 'contracts-stand-apart', 1),
  probe('src/brokers/kafka', '../redis/bus.js', 'a-broker-is-one-room'),
  probe('src/brokers/redis', '../kafka/log.js', 'a-broker-is-one-room'),
  probe('src/brokers/nats', '../../node/topics.js', 'a-broker-is-one-room'),
  probe('src/brokers/memory', '../../metrics.js', 'a-broker-is-one-room'),
  probe('src/brokers', '../node/core.js', 'broker-factories-reach-down'),
  probe('src/transport', '../channels/service.js', 'adapters-do-not-reach-up'),
  probe('src/webhooks', '../node/core.js', 'adapters-do-not-reach-up'),
  probe('src/hooks', '../webhooks/webhooks.js', 'hooks-speak-http-only'),
  probe('src/hooks', '../transport/client.js', 'hooks-speak-http-only', 1),
  probe('src/webhooks', '../hooks/hooks.js', 'webhooks-are-not-hooks', 1),
  probe('src/outbound', '../hooks/hooks.js', 'outbound-is-plain-http'),
  probe('src/node', '../channels/service.js', 'core-knows-no-feature'),
  probe('src/http', '../app.js', 'features-do-not-import-the-root'),
  probe('src/http', '../echo/endpoint.js', 'features-stay-beside-each-other', 1),
  probe('src/echo', '../http/api.js', 'features-stay-beside-each-other'),
  probe('src/http', '../ingest/kafka-ingest.js', 'features-stay-beside-each-other', 2),
  probe('src/ingest', '../http/api.js', 'features-stay-beside-each-other'),
  probe('src/ingest', '../channels/service.js', 'features-stay-beside-each-other', 1),
  probe('src/channels', '../node/bus-metrics.js', 'metrics-stay-beside-what-they-measure'),
  probe('src/webhooks', '../channels/metrics.js', 'metrics-stay-beside-what-they-measure', 3),
  probe('src/node', '../metrics.js', 'metrics-stay-beside-what-they-measure', 2),
  probe('src/node', 'prom-client', 'families-live-in-metrics-modules', 3),
  probe('src/cli', 'express', 'not-to-dev-dep'),
  probe('client', 'socket.io', 'not-to-dev-dep'),
  probe('src/node', '../../harness/wait.js', 'product-does-not-import-tools', 1),
  probe('client', '../src/errors.js', 'sdk-imports-protocol-only', 1),
  probe('harness', '../test/helpers/nodes.js', 'harness-is-shared'),
  probe('test/unit', '../../bench/run.js', 'tests-do-not-import-the-bench'),
  // Allowed imports beside them: the rules must not refuse everything in a folder.
  probe('src/http', '../channels/index.js', undefined, 3),
  probe('src/ingest', '../channels/index.js', undefined, 2),
  probe('src/brokers/kafka', '../../stores/bus.js', undefined, 1),
  probe('src/webhooks', '../outbound/http-caller.js', undefined, 2),
  probe('src/channels', './metrics.js', undefined, 1),
];

/** Two probes that import each other. */
const LOOP = [`src/stores/__${TAG}-loop-a.ts`, `src/stores/__${TAG}-loop-b.ts`] as const;

interface Violation {
  readonly from: string;
  readonly to: string;
  readonly rule: { readonly name: string };
}

describe('the layer rules (.dependency-cruiser.cjs)', () => {
  const written: string[] = [];
  after(() => {
    for (const file of written) rmSync(join(ROOT, file), { force: true });
  });

  it('refuse every forbidden import, each by its own rule, and let the allowed ones through', async () => {
    for (const p of PROBES) {
      mkdirSync(dirname(join(ROOT, p.file)), { recursive: true });
      writeFileSync(join(ROOT, p.file), `import '${p.imports}';\nexport const probe = 1;\n`);
      written.push(p.file);
    }
    writeFileSync(join(ROOT, LOOP[0]), `import './__${TAG}-loop-b.js';\nexport const a = 1;\n`);
    writeFileSync(join(ROOT, LOOP[1]), `import './__${TAG}-loop-a.js';\nexport const b = 1;\n`);
    written.push(...LOOP);

    const bin = join(ROOT, 'node_modules', '.bin', 'depcruise');
    const args = [...PROBES.map((p) => p.file), ...LOOP, '--config', '.dependency-cruiser.cjs', '--output-type', 'json'];
    // Exit code 1 (violations found) is what is expected: read the report either way.
    const out = await run(bin, args, { cwd: ROOT, maxBuffer: 64 * 1024 * 1024 }).catch((err: { stdout?: string }) => ({ stdout: err.stdout ?? '' }));
    const report = JSON.parse(out.stdout) as { summary: { violations: Violation[] } };
    const byFile = new Map<string, Set<string>>();
    for (const v of report.summary.violations) {
      const set = byFile.get(v.from) ?? new Set<string>();
      set.add(v.rule.name);
      byFile.set(v.from, set);
    }

    for (const p of PROBES) {
      const rules = [...(byFile.get(p.file) ?? [])];
      if (p.rule === undefined) assert.deepEqual(rules, [], `${p.file} → ${p.imports} is allowed, but was refused by ${rules.join(', ')}`);
      else assert.ok(rules.includes(p.rule), `${p.file} → ${p.imports} must be refused by ${p.rule}; refused by: ${rules.join(', ') || 'nothing'}`);
    }
    assert.ok(byFile.get(LOOP[0])?.has('no-circular'), 'a two-file import loop must be refused by no-circular');
  });
});
