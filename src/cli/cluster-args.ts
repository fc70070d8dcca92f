/**
 * `fanout cluster`'s command line: its own flags, and the `fanout serve` flags it hands to every
 * node. Serve flags go after `--`, and are also accepted before it when the flag can only be a
 * serve flag (`fanout cluster --nodes 2 --presence 'chat:*'`), as a user types them. The split
 * is unambiguous because the two sets share only `--port` and `--bus`: before `--`, `--port` is
 * HAProxy's (the nodes pick free ports) and `--bus` is the cluster's, which every node gets
 * anyway. Every serve flag takes a value (serve has no boolean flags), so `--flag value` and
 * `--flag=value` are both one flag. Anything else before `--` stays the cluster's, so an unknown
 * flag gets the parser's "unknown option" line.
 */
import { clusterSchema } from '../config/commands.js';
import { toFlag } from '../config/load.js';
import { serveSchema } from '../config/schema.js';

/** The flags of `fanout cluster` itself, `--help` included. */
const CLUSTER_FLAGS: ReadonlySet<string> = new Set(['help', ...Object.keys(clusterSchema.shape).map(toFlag)]);
/** The flags of `fanout serve`. */
const SERVE_FLAGS: ReadonlySet<string> = new Set(Object.keys(serveSchema.shape).map(toFlag));

/** The command line split: the cluster's own arguments, and what every node's `fanout serve` gets. */
export interface ClusterArgs {
  readonly own: readonly string[];
  readonly serve: readonly string[];
}

/** Splits `fanout cluster`'s arguments (without the command name) as the file comment says. */
export function splitClusterArgs(argv: readonly string[]): ClusterArgs {
  const split = argv.indexOf('--');
  const before = split === -1 ? argv : argv.slice(0, split);
  const after = split === -1 ? [] : argv.slice(split + 1);
  const own: string[] = [];
  const serve: string[] = [];
  for (let i = 0; i < before.length; i++) {
    const arg = before[i]!;
    const name = /^--([^=]+)/.exec(arg)?.[1];
    if (name === undefined || CLUSTER_FLAGS.has(name) || !SERVE_FLAGS.has(name)) {
      own.push(arg);
      continue;
    }
    serve.push(arg);
    const value = before[i + 1];
    if (!arg.includes('=') && value !== undefined) {
      serve.push(value);
      i++;
    }
  }
  // Flags after `--` come last, so they win over the same flag given before it.
  return { own, serve: [...serve, ...after] };
}
