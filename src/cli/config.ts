/**
 * `fanout config check FILE`: validates a config file as `serve --config FILE` would, without
 * starting (exit 0, or 2 with the one line `serve` would print).
 * `fanout config print [--config FILE] [serve flags…]`: the effective configuration as YAML.
 */
import { finishServeConfig, readServeInput } from '../config/load.js';
import { effectiveOptions, effectiveYaml } from '../config/print.js';
import { serveSchema } from '../config/schema.js';
import { validate } from '../config/sources.js';
import { ConfigError } from '../errors.js';

export const CONFIG_HELP = `Usage: fanout config check FILE
       fanout config print [--config FILE] [serve flags…]

  check FILE   validate a --config file (YAML or JSON) as \`fanout serve --config FILE\` would:
               every key, value and type, the files it names (TLS, keys) and the options that go
               together; FANOUT_* variables are not read. Exit 0 when valid, 2 with one line
               naming the key otherwise.
  print        print the configuration \`fanout serve\` would run with, as a config file: flags,
               then FANOUT_* variables (FANOUT_CONFIG among them), then the file, then defaults;
               each value's source in a comment, secrets masked.
`;

export function configCommand(argv: readonly string[]): void {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === '--help' || sub === 'help' || rest.includes('--help')) {
    process.stdout.write(CONFIG_HELP);
    if (sub === undefined) process.exitCode = 2;
    return;
  }
  switch (sub) {
    case 'check':
      return check(rest);
    case 'print':
      process.stdout.write(effectiveYaml(effectiveOptions(rest)));
      return;
    default:
      throw new ConfigError(sub, 'unknown config command (one of check, print)');
  }
}

function check(argv: readonly string[]): void {
  const [file, ...extra] = argv;
  if (file === undefined || file.startsWith('-')) throw new ConfigError(file ?? 'config check', 'expected the file to check: fanout config check FILE');
  if (extra.length > 0) throw new ConfigError(extra[0]!, 'unexpected argument (config check takes one file)');
  // The file alone, as the node reads it; the environment is left out so the answer is about the file.
  const { input, origins } = readServeInput(['--config', file], {});
  finishServeConfig(validate(serveSchema, input, origins), origins);
  process.stdout.write(`${file}: valid\n`);
}
