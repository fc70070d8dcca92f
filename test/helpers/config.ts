/** Shared by the config tests: a refused option, as createConfig and as `fanout serve` flags. */
import assert from 'node:assert/strict';
import { createConfig, loadServeConfig, toFlag, type ConfigInput } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';

/**
 * `options` are refused with one line naming `flag` (matching `detail`), by createConfig and by
 * loadServeConfig with the same options as flags, in the same words.
 */
export function expectRejected(options: Readonly<Record<string, string>>, flag: string, detail?: RegExp): void {
  const argv = Object.entries(options).flatMap(([key, value]) => [`--${toFlag(key)}`, value]);
  const label = argv.join(' ');
  let fromCode: ConfigError | undefined;
  try {
    createConfig(options as ConfigInput);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `${label}: ${String(err)}`);
    fromCode = err;
  }
  assert.ok(fromCode, `${label}: createConfig returned a config`);
  assert.equal(fromCode.flag, flag, label);
  assert.ok(fromCode.message.startsWith(`invalid ${flag}: `), fromCode.message);
  assert.ok(!fromCode.message.includes('\n'), fromCode.message);
  if (detail) assert.match(fromCode.message, detail, label);
  assert.throws(
    () => loadServeConfig(argv, {}),
    (err: unknown) => err instanceof ConfigError && err.message === fromCode.message,
    `${label}: loadServeConfig should give the same line: ${fromCode.message}`,
  );
}
