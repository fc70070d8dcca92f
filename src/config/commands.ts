/** Schemas of the CLI commands other than `serve`. */
import { existsSync } from 'node:fs';
import { z } from 'zod';
import { ConfigError, errorMessage } from '../errors.js';
import { HAPROXY_DEFAULTS, parseServers, sourceAddress } from '../haproxy/config.js';
import { parseBusAddress } from './bus-address.js';

const port = (def: number) =>
  z.coerce
    .number({ error: 'expected a port number' })
    .int({ error: 'expected a whole number' })
    .min(1, { error: 'expected a port from 1 to 65535' })
    .max(65535, { error: 'expected a port from 1 to 65535' })
    .default(def);

/** --source: the local address HAProxy connects to the nodes from (an IP literal). */
const sourceOption = z
  .string()
  .superRefine((value, ctx) => {
    try {
      sourceAddress(value);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: errorMessage(err) });
    }
  })
  .optional();

export const haproxyConfigSchema = z.object({
  servers: z
    .string({ error: 'missing: give the nodes as host:port[,host:port…]' })
    .transform((s, ctx) => {
      try {
        return parseServers(s);
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: errorMessage(err) });
        return z.NEVER;
      }
    }),
  port: port(HAPROXY_DEFAULTS.port),
  host: z.string().min(1).default(HAPROXY_DEFAULTS.host),
  balance: z.enum(['roundrobin', 'leastconn'], { error: 'expected roundrobin or leastconn' }).default(HAPROXY_DEFAULTS.balance),
  maxconn: z.coerce.number().int().min(1, { error: 'expected at least 1' }).default(HAPROXY_DEFAULTS.maxconn),
  statsPort: z.coerce.number().int().min(1).max(65535, { error: 'expected a port from 1 to 65535' }).optional(),
  tlsCert: z
    .string()
    .min(1)
    .refine((f) => existsSync(f), { error: 'no such file (expected a PEM with the certificate chain and its key)' })
    .optional(),
  redirectPort: z.coerce.number().int().min(1, { error: 'expected a port from 1 to 65535' }).max(65535, { error: 'expected a port from 1 to 65535' }).optional(),
  hstsMaxAge: z.coerce.number().int().min(0, { error: 'expected 0 or more seconds' }).default(HAPROXY_DEFAULTS.hstsMaxAge),
  source: sourceOption,
});

export const HAPROXY_CONFIG_HELP = `Usage: fanout haproxy-config --servers host:port[,host:port…] [options]

Prints a complete haproxy.cfg for the nodes given.

  --servers LIST    the nodes, host:port comma-separated (required)
  --port N          port HAProxy listens on (default ${HAPROXY_DEFAULTS.port})
  --host ADDR       address HAProxy binds (default ${HAPROXY_DEFAULTS.host})
  --balance ALG     roundrobin or leastconn (default ${HAPROXY_DEFAULTS.balance})
  --maxconn N       connection cap; each costs HAProxy two file descriptors (default ${HAPROXY_DEFAULTS.maxconn})
  --stats-port N    also serve HAProxy's stats page on this port
  --tls-cert PEM    terminate TLS (https, wss) on --port with this PEM (certificate chain + key);
                    the nodes stay on plain HTTP behind HAProxy
  --redirect-port N with --tls-cert: also listen for plain HTTP here and redirect it to https
  --hsts-max-age S  with --tls-cert: Strict-Transport-Security max-age (default ${HAPROXY_DEFAULTS.hstsMaxAge}; 0 for none)
  --source ADDR     the local address HAProxy connects to the nodes from (e.g. 127.0.0.2): one per
                    proxy when several share a box, each then has its own ephemeral ports`;

/** `--node-ports 9001,9002`: one port per node, each from 1 to 65535, no port twice. */
const nodePorts = z.string().transform((value, ctx) => {
  const parts = value.split(',').map((p) => p.trim());
  const ports = parts.map((p) => (/^\d+$/.test(p) ? Number(p) : NaN));
  if (ports.some((p) => !(p >= 1 && p <= 65535))) {
    ctx.addIssue({ code: 'custom', message: 'expected ports from 1 to 65535, comma-separated, one per node (e.g. 9001,9002)' });
    return z.NEVER;
  }
  const twice = ports.find((p, i) => ports.indexOf(p) !== i);
  if (twice !== undefined) {
    ctx.addIssue({ code: 'custom', message: `expected a different port for each node (${twice} is given twice)` });
    return z.NEVER;
  }
  return ports;
});

export const clusterSchema = z.object({
  // Required unless --node-ports gives one port per node.
  nodes: z.coerce
    .number({ error: 'expected a number of nodes' })
    .int({ error: 'expected a whole number' })
    .min(1, { error: 'expected 1 to 64 nodes' })
    .max(64, { error: 'expected 1 to 64 nodes' })
    .optional(),
  nodePorts: nodePorts.optional(),
  port: port(HAPROXY_DEFAULTS.port),
  // Kept as given (it is passed on to every node), but checked here, so a bad URL stops the
  // command before any node starts.
  bus: z
    .string()
    .superRefine((value, ctx) => {
      try {
        parseBusAddress(value);
      } catch (err) {
        if (!(err instanceof ConfigError)) throw err;
        ctx.addIssue({ code: 'custom', message: err.reason });
      }
    })
    .optional(),
  balance: z.enum(['roundrobin', 'leastconn'], { error: 'expected roundrobin or leastconn' }).default(HAPROXY_DEFAULTS.balance),
  statsPort: z.coerce.number().int().min(1).max(65535).optional(),
  maxconn: z.coerce.number().int().min(1).default(HAPROXY_DEFAULTS.maxconn),
  source: sourceOption,
});

export const CLUSTER_HELP = `Usage: fanout cluster --nodes N [options] [serve flags…] [-- serve flags…]

Starts N nodes (on free ports unless --node-ports), waits until each is ready (its bus
connected), starts HAProxy in front of them, prints the URL, stops all on Ctrl-C. It stops at
once, exit 2, when nothing answers at the bus's (or --history's) address. The nodes' and
HAProxy's lines are shown with [node1], [haproxy] in front.

  --nodes N         how many nodes (required unless --node-ports says)
  --node-ports LIST the nodes' ports, comma-separated, one per node, e.g. 9001,9002
                    (default: free ports picked at start)
  --port N          port HAProxy listens on (default ${HAPROXY_DEFAULTS.port})
  --bus URL         the broker the nodes share (default redis://127.0.0.1:6379 for 2+ nodes);
                    history and presence follow it (redis, nats, kafka); with redis-cluster://
                    or amqp:// give --history redis://host:port (or nats://, kafka://)
  --balance ALG     roundrobin or leastconn (default ${HAPROXY_DEFAULTS.balance})
  --stats-port N    also serve HAProxy's stats page on this port
  --maxconn N       HAProxy's connection cap (default ${HAPROXY_DEFAULTS.maxconn})
  --source ADDR     the local address HAProxy connects to the nodes from (e.g. 127.0.0.2); the
                    nodes trust its X-Forwarded-For (a source per cluster when several share a box)
  serve flags       any \`fanout serve\` flag (see fanout serve --help) is passed to every node,
                    e.g. --presence 'chat:*'; --port and --bus are the cluster's own
  -- FLAGS          anything after -- is passed to every node's \`fanout serve\` as it is`;
