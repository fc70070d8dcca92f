/**
 * The built CLI with a config file (issue 27 part 1): `fanout config check`, `fanout config print`
 * and `fanout serve --config` (and FANOUT_CONFIG) as a user runs them.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { FANOUT_MAIN, forkListening, waitReadyPort, runFanout } from '../../harness/fanout-process.js';
import { tempDir } from '../helpers/security.js';

test('fanout config check: exit 0 for a valid file, 2 with one line naming the key path otherwise', async () => {
  const tmp = tempDir();
  try {
    const good = tmp.file('good.yaml', 'port: 0\npresence: [chat:*]\nmax-payload: 65536\n');
    const ok = await runFanout(['config', 'check', good]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdout, `${good}: valid\n`);

    const bad = tmp.file('fanout.yaml', 'port: 0\nhistory-size: -1\n');
    const refused = await runFanout(['config', 'check', bad]);
    assert.equal(refused.code, 2);
    assert.equal(refused.stdout, '');
    assert.equal(refused.stderr, `fanout: invalid history-size in ${bad}: expected at least 0, got -1\n`);

    // The check is about the file: a bad variable in the environment does not change its answer.
    assert.equal((await runFanout(['config', 'check', good], { FANOUT_PORT: 'x' })).code, 0);
    const missing = await runFanout(['config', 'check']);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /^fanout: invalid config check: expected the file to check/);
  } finally {
    tmp.cleanup();
  }
});

test('fanout serve --config stops with exit 2 and one line for a bad file, from the flag or FANOUT_CONFIG', async () => {
  const tmp = tempDir();
  try {
    const bad = tmp.file('fanout.yaml', 'max-payload: [1]\n');
    for (const [args, env] of [[['serve', '--config', bad], {}], [['serve'], { FANOUT_CONFIG: bad }]] as const) {
      const { code, stderr } = await runFanout([...args], env);
      assert.equal(code, 2, stderr);
      assert.equal(stderr, `fanout: invalid max-payload in ${bad}: expected a number, got [1]\n`);
    }
  } finally {
    tmp.cleanup();
  }
});

test('fanout serve --config runs a node on the file: port 0, its node id, answering /readyz', async () => {
  const tmp = tempDir();
  try {
    const file = tmp.file('fanout.yaml', ['port: 0', "host: '127.0.0.1'", 'log-level: warn', 'node-id: from-file', 'presence: [chat:*]'].join('\n') + '\n');
    for (const [args, env] of [[['serve', '--config', file], {}], [['serve'], { FANOUT_CONFIG: file }]] as const) {
      const node = await forkListening(FANOUT_MAIN, [...args], { env });
      try {
        await waitReadyPort(node.port);
        assert.equal(node.id, 'from-file');
        const health = (await (await fetch(`http://127.0.0.1:${node.port}/healthz`)).json()) as { node: string };
        assert.equal(health.node, 'from-file');
      } finally {
        assert.equal(await node.stop(), 0);
      }
    }
  } finally {
    tmp.cleanup();
  }
});

test('fanout config print: flags over variables over the file, secrets masked, and the output checks clean', async () => {
  const tmp = tempDir();
  try {
    const file = tmp.file('fanout.yaml', 'bus: redis://app:hunter2@127.0.0.1:6379\napi-key: k3y\nmax-payload: 1000\nheartbeat: 5\n');
    const { code, stdout, stderr } = await runFanout(['config', 'print', '--config', file, '--max-payload', '3000'], { FANOUT_HEARTBEAT: '9' });
    assert.equal(code, 0, stderr);
    assert.doesNotMatch(stdout, /hunter2|k3y/);
    assert.match(stdout, /^bus: redis:\/\/app:\*{8}@127\.0\.0\.1:6379 # .*fanout\.yaml$/m);
    assert.match(stdout, /^api-key: "\*{8}" # .*fanout\.yaml$/m);
    assert.match(stdout, /^max-payload: 3000 # --max-payload$/m);
    assert.match(stdout, /^heartbeat: 9 # FANOUT_HEARTBEAT$/m);
    const printed = tmp.file('printed.yaml', stdout);
    const check = await runFanout(['config', 'check', printed]);
    assert.equal(check.code, 0, check.stderr);
  } finally {
    tmp.cleanup();
  }
});

test('every YAML example in README.md and docs/config.md passes fanout config check', async () => {
  const tmp = tempDir();
  try {
    let checked = 0;
    for (const doc of ['README.md', 'docs/config.md']) {
      const text = readFileSync(fileURLToPath(new URL(`../../../${doc}`, import.meta.url)), 'utf8');
      for (const [i, match] of [...text.matchAll(/```yaml\n([\s\S]*?)```/g)].entries()) {
        const { code, stderr } = await runFanout(['config', 'check', tmp.file(`example-${checked}.yaml`, match[1]!)]);
        assert.equal(code, 0, `${doc}, YAML example ${i + 1}: ${stderr}`);
        checked++;
      }
    }
    assert.ok(checked >= 2, `found ${checked} examples`);
  } finally {
    tmp.cleanup();
  }
});
