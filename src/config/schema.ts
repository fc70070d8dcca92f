/**
 * The node's configuration schema: every `fanout serve` flag, its environment variable, its
 * default and its validation, in one table. Parsed once at the edge into a frozen {@link Config}.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { z } from 'zod';

/** Defaults, as named constants so docs, tests and code agree. */
export const DEFAULTS = {
  port: 3000,
  host: '0.0.0.0',
  bus: 'memory',
  busPrefix: 'fanout',
  logLevel: 'info',
  maxPayload: 65536,
  rateLimit: 0,
  maxConnections: 0,
  maxConnectionsPerIp: 0,
  handshakeTimeout: 10,
  heartbeat: 25,
  maxBuffered: 1024 * 1024,
  coalesceMs: 'auto' as number | 'auto',
  historySize: 100,
  historyTtl: 300,
  presenceTtl: 15,
  maxSubscriptions: 100,
  drainDelay: 5,
  drainTimeout: 5,
} as const;

const BUS_SCHEMES = ['memory', 'redis:', 'rediss:', 'redis-cluster:', 'nats:', 'amqp:', 'amqps:'];

const int = (min: number, max = Number.MAX_SAFE_INTEGER) =>
  z.coerce
    .number({ error: 'expected a number' })
    .int({ error: 'expected a whole number' })
    .min(min, { error: `expected at least ${min}` })
    .max(max, { error: `expected at most ${max}` });

const seconds = () =>
  z.coerce.number({ error: 'expected a number of seconds' }).min(0, { error: 'expected 0 or more seconds' });

const list = () =>
  z
    .string()
    .transform((s) =>
      s
        .split(',')
        .map((x) => x.trim())
        .filter((x) => x.length > 0),
    )
    .pipe(z.array(z.string()));

const busUrl = z.string().refine(
  (s) => s === 'memory' || BUS_SCHEMES.some((scheme) => s.startsWith(scheme + '//')),
  { error: 'expected memory, redis://host:port[/db], redis-cluster://host:port,…, nats://host:port or amqp://user:pass@host:port' },
);

/** The serve options, keyed by their config name. Only strings come in (flags and env). */
export const serveSchema = z.object({
  port: int(0, 65535).default(DEFAULTS.port),
  host: z.string().min(1).default(DEFAULTS.host),
  bus: busUrl.default(DEFAULTS.bus),
  busPrefix: z
    .string()
    .regex(/^[A-Za-z0-9._:-]{1,64}$/, { error: 'expected 1–64 letters, digits, . _ : or -' })
    .default(DEFAULTS.busPrefix),
  nodeId: z
    .string()
    .regex(/^[A-Za-z0-9._-]{1,64}$/, { error: 'expected 1–64 letters, digits, . _ or -' })
    .default(() => `${hostname().split('.')[0]?.slice(0, 40) || 'node'}-${randomBytes(3).toString('hex')}`),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default(DEFAULTS.logLevel),

  // Security gate (issue: security).
  allowedOrigins: list().default([]),
  jwtSecret: z.string().min(1).optional(),
  jwtPublicKey: z.string().min(1).optional(),
  jwksUrl: z.url({ error: 'expected a URL' }).optional(),
  jwtIssuer: z.string().min(1).optional(),
  jwtAudience: z.string().min(1).optional(),
  maxPayload: int(1, 64 * 1024 * 1024).default(DEFAULTS.maxPayload),
  rateLimit: z.coerce.number({ error: 'expected messages per second' }).min(0).default(DEFAULTS.rateLimit),
  maxConnections: int(0).default(DEFAULTS.maxConnections),
  maxConnectionsPerIp: int(0).default(DEFAULTS.maxConnectionsPerIp),
  handshakeTimeout: seconds().default(DEFAULTS.handshakeTimeout),
  heartbeat: seconds().default(DEFAULTS.heartbeat),
  maxBuffered: int(1024).default(DEFAULTS.maxBuffered),
  tlsCert: z.string().min(1).optional(),
  tlsKey: z.string().min(1).optional(),
  trustProxy: list().default([]),
  coalesceMs: z.union([z.literal('auto'), int(0, 1000)], { error: "expected 'auto' or a whole number of milliseconds from 0 to 1000" }).default(DEFAULTS.coalesceMs),

  // Channels (issue: channels).
  history: busUrl.optional(),
  historySize: int(0).default(DEFAULTS.historySize),
  historyTtl: seconds().default(DEFAULTS.historyTtl),
  apiKey: z.string().min(1).optional(),
  presence: list().default([]),
  presenceTtl: z.coerce.number({ error: 'expected a number of seconds' }).min(0.3, { error: 'expected at least 0.3 seconds' }).default(DEFAULTS.presenceTtl),
  anonymousSubscribe: list().optional(),
  anonymousPublish: list().optional(),
  maxSubscriptions: int(1).default(DEFAULTS.maxSubscriptions),

  // Operations (issue: operations).
  drainDelay: seconds().default(DEFAULTS.drainDelay),
  drainTimeout: seconds().default(DEFAULTS.drainTimeout),
  metricsToken: z.string().min(1).optional(),
});

/** The node's configuration, validated and frozen. */
export type Config = Readonly<z.output<typeof serveSchema>>;

/** Help text per option, in the order `fanout serve --help` prints them. */
export const SERVE_HELP: Readonly<Record<keyof z.input<typeof serveSchema>, string>> = {
  port: `port to listen on (default ${DEFAULTS.port}; 0 picks a free one)`,
  host: `address to bind (default ${DEFAULTS.host})`,
  bus: 'broker: memory (one node), redis://host:port[/db], redis-cluster://…, nats://…, amqp://… (default memory)',
  busPrefix: `prefix of every broker topic and key, to share a broker between clusters (default ${DEFAULTS.busPrefix})`,
  nodeId: 'this node\'s id, unique in the cluster (default: hostname plus random suffix)',
  logLevel: `fatal|error|warn|info|debug|trace|silent (default ${DEFAULTS.logLevel})`,
  allowedOrigins: 'comma-separated exact origins allowed to open WebSockets; * for any (default: same origin)',
  jwtSecret: 'HS256 secret: require a JWT on every WebSocket',
  jwtPublicKey: 'PEM file with an RS256/ES256 public key: require a JWT',
  jwksUrl: 'JWKS URL to verify JWTs against (keys cached)',
  jwtIssuer: 'required JWT issuer (iss)',
  jwtAudience: 'required JWT audience (aud)',
  maxPayload: `largest message in bytes; larger closes with 1009 (default ${DEFAULTS.maxPayload})`,
  rateLimit: 'messages per second per connection, 0 for no limit (default 0)',
  maxConnections: 'WebSocket connections per node, 0 for no limit (503 past it)',
  maxConnectionsPerIp: 'WebSocket connections per client IP, 0 for no limit (429 past it)',
  handshakeTimeout: `seconds a client has to send its request headers (default ${DEFAULTS.handshakeTimeout})`,
  heartbeat: `seconds between pings; a peer that misses one is dropped, 0 for off (default ${DEFAULTS.heartbeat})`,
  maxBuffered: `unsent bytes per socket before it is closed as a slow consumer (default ${DEFAULTS.maxBuffered})`,
  tlsCert: 'PEM certificate: serve https and wss (with --tls-key)',
  tlsKey: 'PEM private key for --tls-cert',
  trustProxy: 'comma-separated proxy addresses (e.g. 127.0.0.1) whose X-Forwarded-For gives the client IP for per-IP limits and logs',
  coalesceMs: `under sustained traffic, least milliseconds between flushes, joining a socket's frames into one write; auto: 4× the previous flush's duration, at most 100 ms; 0: every event-loop turn (default ${DEFAULTS.coalesceMs})`,
  history: 'where channel history, recovery and presence live: memory or redis://… (default: the bus if it is Redis, else memory)',
  historySize: `messages kept per channel for history and recovery (default ${DEFAULTS.historySize})`,
  historyTtl: `seconds a channel's history is kept after its last message (default ${DEFAULTS.historyTtl})`,
  apiKey: 'key for the HTTP publish API (Authorization: Bearer KEY); the API is off without it',
  presence: 'comma-separated channel patterns with presence (join/leave events, presence lists), e.g. chat:* (default none)',
  presenceTtl: `seconds after which a silent node's clients leave presence; heartbeats every third of it (default ${DEFAULTS.presenceTtl})`,
  anonymousSubscribe: 'channel patterns any client may subscribe to (also history and presence), token or not (default * without JWT, none with JWT)',
  anonymousPublish: 'channel patterns any client may publish to, token or not (default * without JWT, none with JWT)',
  maxSubscriptions: `channels one connection may subscribe to at once (default ${DEFAULTS.maxSubscriptions})`,
  drainDelay: `seconds to keep serving after SIGTERM while HAProxy takes the node out (default ${DEFAULTS.drainDelay})`,
  drainTimeout: `seconds over which clients are closed during a drain (default ${DEFAULTS.drainTimeout})`,
  metricsToken: 'require Authorization: Bearer TOKEN on /metrics',
};
