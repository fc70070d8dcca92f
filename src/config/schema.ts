/**
 * The node's configuration schema: every `fanout serve` flag, its environment variable, its
 * default and its validation, in one table. Parsed once at the edge into a frozen {@link Config}:
 * values with structure (the bus address, the origin policy, the history store) are parsed here,
 * files are read right after (load.ts), so a config that loads is one that works.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { z } from 'zod';
import type { AuthMode } from './auth-mode.js';
import { BUS_EXPECTED, parseBusAddress } from './bus-address.js';
import { DEFAULTS, RATE_LIMIT_BYTES_BURST } from './defaults.js';
import { parseHistorySource, type HistoryTarget } from './history-target.js';
import { KAFKA_GROUP, KAFKA_TOPIC, parseIngestBrokers, type KafkaIngestTarget } from './kafka-ingest.js';
import { originPolicy } from './origins.js';
import type { TlsFiles } from './tls.js';
import { MAX_IDEMPOTENCY_WINDOW, namespacesSchema } from './namespaces.js';
import { pusherAppId, pusherAppKey, pusherAppsSchema, pusherClientEventRate, pusherMaxEventBytes, type PusherAppConfig } from './pusher-apps.js';
import { hookUrl, int, list, number, parsedWith, patterns, seconds } from './values.js';

export { DEFAULTS, RATE_LIMIT_BYTES_BURST, TIMINGS } from './defaults.js';
export type { AuthMode } from './auth-mode.js';
export type { BusAddress } from './bus-address.js';
export type { HistoryTarget } from './history-target.js';
export type { KafkaIngestTarget } from './kafka-ingest.js';
export type { ChannelOptions, Namespace } from './namespaces.js';
export type { OriginPolicy } from './origins.js';
export type { PusherAppConfig, PusherAppOptions } from './pusher-apps.js';
export type { TlsFiles } from './tls.js';

/**
 * The serve options, keyed by their config name. Strings come in from flags and env; a file and
 * `createConfig` give typed values, which each kind (values.ts) takes only as its type says. An
 * unknown key is an error, not ignored.
 */
export const serveSchema = z.strictObject({
  port: int(0, 65535).default(DEFAULTS.port),
  host: z.string().min(1).default(DEFAULTS.host),
  bus: z.string({ error: BUS_EXPECTED }).default(DEFAULTS.bus).transform(parsedWith((v: string) => parseBusAddress(v))),
  busPrefix: z
    .string()
    .regex(/^[A-Za-z0-9._:-]{1,64}$/, { error: 'expected 1–64 letters, digits, . _ : or -' })
    .default(DEFAULTS.busPrefix),
  nodeId: z
    .string()
    .regex(/^[A-Za-z0-9._-]{1,64}$/, { error: 'expected 1–64 letters, digits, . _ or -' })
    .default(() => `${hostname().split('.')[0]?.slice(0, 40) || 'node'}-${randomBytes(3).toString('hex')}`),
  logLevel: z
    .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], { error: 'expected one of fatal, error, warn, info, debug, trace, silent' })
    .default(DEFAULTS.logLevel),
  logFormat: z.enum(['auto', 'json', 'pretty'], { error: 'expected auto, json or pretty' }).default(DEFAULTS.logFormat),

  // Security gate (issue: security).
  allowedOrigins: list().default([]).transform(parsedWith(originPolicy)),
  jwtSecret: z.string().min(1).optional(),
  jwtPublicKey: z.string().min(1).optional(),
  // jose fetches the key set over HTTP(S); any other scheme would answer 503 to every client.
  jwksUrl: z.url({ protocol: /^https?$/, error: 'expected an http:// or https:// URL' }).optional(),
  jwtIssuer: z.string().min(1).optional(),
  jwtAudience: z.string().min(1).optional(),
  maxPayload: int(1, 64 * 1024 * 1024).default(DEFAULTS.maxPayload),
  rateLimit: number('expected messages per second').pipe(z.number().min(0, { error: 'expected 0 or more messages per second' })).default(DEFAULTS.rateLimit),
  rateLimitBytes: int(0).default(DEFAULTS.rateLimitBytes),
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
  history: z.string().transform(parsedWith((v: string) => parseHistorySource(v))).optional(),
  historySize: int(0).default(DEFAULTS.historySize),
  historyTtl: seconds().default(DEFAULTS.historyTtl),
  historyMaxBytes: int(0).default(DEFAULTS.historyMaxBytes),
  idempotencyWindow: int(1, MAX_IDEMPOTENCY_WINDOW).default(DEFAULTS.idempotencyWindow),
  apiKey: z.string().min(1).optional(),
  presence: patterns().default([]),
  presenceTtl: number('expected a number of seconds').pipe(z.number().min(0.3, { error: 'expected at least 0.3 seconds' })).default(DEFAULTS.presenceTtl),
  anonymousSubscribe: patterns().optional(),
  anonymousPublish: patterns().optional(),
  maxSubscriptions: int(1).default(DEFAULTS.maxSubscriptions),

  // Back-end hooks (issue 16, docs/hooks.md): the application decides who connects, subscribes and publishes.
  connectHook: hookUrl().optional(),
  subscribeHook: hookUrl().optional(),
  publishHook: hookUrl().optional(),
  refreshHook: hookUrl().optional(),
  hookTimeout: number('expected a number of seconds')
    .pipe(z.number()
    .gt(0, { error: 'expected more than 0 seconds' })
    .max(60, { error: 'expected at most 60 seconds' }))
    .default(DEFAULTS.hookTimeout),
  hookSecret: z.string().min(1).optional(),
  hookConcurrency: int(1, 100_000).default(DEFAULTS.hookConcurrency),
  // Webhooks (issue 16, docs/hooks.md#webhooks): the back end hears what happens, at least once.
  webhook: hookUrl().optional(),
  webhookSecret: z.string().min(1).optional(),
  webhookRetry: seconds().default(DEFAULTS.webhookRetry),

  // Kafka ingest (issue 15, docs/brokers.md#kafka-ingest): records of a Kafka topic published into their channels.
  kafkaIngest: z
    .string()
    .regex(KAFKA_TOPIC, { error: 'expected a Kafka topic name: 1 to 249 of a-z A-Z 0-9 . _ -' })
    .refine((v) => v !== '.' && v !== '..', { error: 'expected a Kafka topic name, not . or ..' })
    .optional(),
  kafkaBrokers: z.string().transform(parsedWith(parseIngestBrokers)).optional(),
  kafkaIngestGroup: z.string().regex(KAFKA_GROUP, { error: 'expected 1 to 249 of a-z A-Z 0-9 . _ : -' }).optional(),

  // Pusher Channels protocol (issue 30, docs/pusher.md): the flags' app, on WS /app/{key} and /apps/{id}/….
  pusherAppId: pusherAppId().optional(),
  pusherKey: pusherAppKey().optional(),
  pusherSecret: z.string().min(1).optional(),
  pusherWebhook: hookUrl().optional(),
  pusherMaxEventBytes: pusherMaxEventBytes().default(DEFAULTS.pusherMaxEventBytes),
  pusherClientEventRate: pusherClientEventRate().default(DEFAULTS.pusherClientEventRate),
  // More apps (pusher-apps.ts): a config file's (or createConfig's) only; no flag, no variable.
  pusherApps: pusherAppsSchema.default([]),

  // Operations (issue: operations).
  drainDelay: seconds().default(DEFAULTS.drainDelay),
  drainTimeout: seconds().default(DEFAULTS.drainTimeout),
  metricsToken: z.string().min(1).optional(),

  // Namespaces (issue 27, docs/config.md): a config file's (or createConfig's) only; no flag, no variable.
  namespaces: namespacesSchema.default([]),
});

/** The options as the schema gives them, before files are read and the history default is chosen. */
export type ServeOptions = z.output<typeof serveSchema>;

/**
 * The node's configuration, validated and frozen. Options with structure are parsed: `bus` is a
 * `BusAddress`, `allowedOrigins` an `OriginPolicy`; the raw file and key options are
 * replaced by what they give (`tls`, `auth`).
 */
export type Config = Readonly<
  Omit<ServeOptions, 'history' | 'tlsCert' | 'tlsKey' | 'jwtSecret' | 'jwtPublicKey' | 'jwksUrl' | 'kafkaIngest' | 'kafkaBrokers' | 'kafkaIngestGroup' | 'pusherApps'> & {
    /** Where history, recovery and presence live: --history, else the bus when it can hold them (memory, one Redis, NATS). */
    history: HistoryTarget;
    /** --tls-cert and --tls-key, read and checked; undefined: plain http and ws. */
    tls: TlsFiles | undefined;
    /** How WebSocket clients authenticate (--jwt-secret, --jwt-public-key or --jwks-url, the key file read). */
    auth: AuthMode;
    /** True when a JWT key source is configured: anonymous clients get only the --anonymous-* channels. */
    jwt: boolean;
    /** --kafka-ingest with its brokers and group resolved; undefined: no ingest. */
    kafkaIngest: KafkaIngestTarget | undefined;
    /** Every Pusher app served: the flags' app (--pusher-app-id, …) first, then `pusher-apps:`'s, limits resolved. */
    pusherApps: readonly PusherAppConfig[];
  }
>;

/** --config (FANOUT_CONFIG): not an option of the schema but where options come from (file.ts). */
export const CONFIG_FLAG_HELP =
  'YAML (or JSON) file of options under the flags\' own names (max-payload: 65536), namespaces and pusher-apps (docs/config.md); flags and FANOUT_* variables win over it; check it with fanout config check FILE';

/** Help text per option, in the order `fanout serve --help` prints them. */
export const SERVE_HELP: Readonly<Record<Exclude<keyof z.input<typeof serveSchema>, 'namespaces' | 'pusherApps'>, string>> = {
  port: `port to listen on (default ${DEFAULTS.port}; 0 picks a free one)`,
  host: `address to bind (default ${DEFAULTS.host})`,
  bus: 'broker: memory (one node), redis://host:port[/db], redis-cluster://…, nats://…, amqp://…, kafka://host:port[,…][/topic] (default memory)',
  busPrefix: `prefix of every broker topic and key, to share a broker between clusters (default ${DEFAULTS.busPrefix})`,
  nodeId: 'this node\'s id, unique in the cluster (default: hostname plus random suffix)',
  logLevel: `fatal|error|warn|info|debug|trace|silent (default ${DEFAULTS.logLevel})`,
  logFormat: 'json (lines for machines), pretty (for a person) or auto: pretty when stdout is a terminal, else json (default auto)',
  allowedOrigins: 'comma-separated exact origins allowed to open WebSockets; * for any (default: same origin)',
  jwtSecret: 'HS256 secret: require a JWT on every WebSocket',
  jwtPublicKey: 'PEM file with an RS256/ES256 public key: require a JWT',
  jwksUrl: 'JWKS URL to verify JWTs against (keys cached)',
  jwtIssuer: 'required JWT issuer (iss)',
  jwtAudience: 'required JWT audience (aud)',
  maxPayload: `largest message in bytes; larger closes with 1009 (default ${DEFAULTS.maxPayload})`,
  rateLimit: `messages per second per connection (burst: one second's worth), 0 for no limit (default ${DEFAULTS.rateLimit})`,
  rateLimitBytes: `bytes per second one connection may send (burst: ${RATE_LIMIT_BYTES_BURST} × --max-payload); past it frames are refused like --rate-limit's, 0 for no limit (default ${DEFAULTS.rateLimitBytes})`,
  maxConnections: 'WebSocket connections per node, 0 for no limit (503 past it)',
  maxConnectionsPerIp: 'WebSocket connections per client IP, 0 for no limit (429 past it)',
  handshakeTimeout: `seconds a client has to send its request headers (default ${DEFAULTS.handshakeTimeout})`,
  heartbeat: `seconds between checks of a socket; a silent one is pinged, and dropped if it does not answer by the next check, 0 for off (default ${DEFAULTS.heartbeat})`,
  maxBuffered: `unsent bytes per socket before it is closed as a slow consumer (default ${DEFAULTS.maxBuffered})`,
  tlsCert: 'PEM certificate: serve https and wss (with --tls-key)',
  tlsKey: 'PEM private key for --tls-cert',
  trustProxy: 'comma-separated proxy addresses (e.g. 127.0.0.1) whose X-Forwarded-For gives the client IP for per-IP limits and logs',
  coalesceMs: `under sustained traffic, least milliseconds between flushes, joining a socket's frames into one write; auto: 4× the previous flush's duration, at most 100 ms; 0: every event-loop turn (default ${DEFAULTS.coalesceMs})`,
  history: 'where channel history, recovery and presence live: memory (per node), redis://…, nats://… or kafka://… (default: the bus when it is memory, Redis, NATS or Kafka; required with redis-cluster:// and amqp://)',
  historySize: `messages kept per channel for history and recovery (default ${DEFAULTS.historySize})`,
  historyTtl: `seconds a channel's history is kept after its last message (default ${DEFAULTS.historyTtl})`,
  historyMaxBytes: `bytes of history the memory store keeps, all channels together; past it the least recently written channels are evicted whole, 0 for no cap (default ${DEFAULTS.historyMaxBytes})`,
  idempotencyWindow: `seconds a publish's idempotency_key is remembered per channel: a repeat within it stores nothing and is answered with the first offset, 1 to ${MAX_IDEMPOTENCY_WINDOW} (default ${DEFAULTS.idempotencyWindow})`,
  apiKey: 'key for the HTTP publish API (Authorization: Bearer KEY); the API is off without it',
  presence: 'comma-separated channel patterns with presence (join/leave events, presence lists), e.g. chat:* (default none)',
  presenceTtl: `seconds after which a silent node's clients leave presence; heartbeats every third of it (default ${DEFAULTS.presenceTtl})`,
  anonymousSubscribe: 'channel patterns any client may subscribe to (also history and presence), token or not (default * without JWT, none with JWT, --connect-hook or --subscribe-hook)',
  anonymousPublish: 'channel patterns any client may publish to, token or not (default * without JWT, none with JWT or --connect-hook)',
  maxSubscriptions: `channels one connection may subscribe to at once (default ${DEFAULTS.maxSubscriptions})`,
  connectHook: 'URL the node POSTs each WebSocket upgrade to (after the Origin check); its answer admits (200, with the identity) or refuses (401/403); see docs/hooks.md',
  subscribeHook: 'URL the node asks about subscriptions the identity\'s patterns do not allow (200 allows, 403 forbids)',
  publishHook: 'URL the node asks about every socket publish (200 allows and may replace the data, 403 forbids)',
  refreshHook: 'URL the node asks shortly before a session the connect hook admitted with `expires_at` expires (200 with a new `expires_at` extends it, 403 closes it with 4003); see docs/auth.md',
  hookTimeout: `seconds a hook call may take before it counts as failed (503 / unavailable) (default ${DEFAULTS.hookTimeout})`,
  hookSecret: 'sign hook requests: X-Fanout-Signature: sha256=<hex HMAC-SHA256 of the body>',
  hookConcurrency: `hook calls in flight per node; past it requests are refused (503 / unavailable), not queued (default ${DEFAULTS.hookConcurrency})`,
  webhook: 'URL the node POSTs channel_occupied/vacated and member_added/removed events to, once per cluster, at least once (needs --webhook-secret); see docs/hooks.md',
  webhookSecret: 'signs webhook requests (X-Fanout-Signature: sha256=<hex HMAC-SHA256 of the body>); required with --webhook',
  webhookRetry: `seconds a webhook event is retried (timeouts, network errors, 5xx) before it is dropped (default ${DEFAULTS.webhookRetry})`,
  kafkaIngest: 'Kafka topic whose records (key: channel, value: JSON data) are published into their channels as POST /api/publish does, once per cluster; see docs/brokers.md',
  kafkaBrokers: 'Kafka brokers host:port[,host:port] to read --kafka-ingest from (default: the --bus brokers when the bus is kafka://)',
  kafkaIngestGroup: 'consumer group of --kafka-ingest, the same on every node of a cluster (default fanout-ingest-<bus-prefix>)',
  pusherAppId: 'Pusher app id (with --pusher-key and --pusher-secret): serves the Pusher Channels protocol on WS /app/{key} and its HTTP API on /apps/{id}/…; see docs/pusher.md',
  pusherKey: 'Pusher app key: clients connect to /app/{key}, the HTTP API is signed with auth_key={key}',
  pusherSecret: 'Pusher app secret: signs private/presence channel auth, signin, the HTTP API and webhooks',
  pusherWebhook: 'URL the node POSTs Pusher-format webhooks to (X-Pusher-Key, X-Pusher-Signature): channel_occupied/vacated, member_added/removed, client_event, cache_miss, once per cluster; needs --history redis:// (or a Redis bus)',
  pusherMaxEventBytes: `largest Pusher event data in bytes, from clients or the HTTP API (default ${DEFAULTS.pusherMaxEventBytes}, Pusher's 10 KB); also pusher-apps' default`,
  pusherClientEventRate: `client-* events a Pusher connection may send per second (default ${DEFAULTS.pusherClientEventRate}); also pusher-apps' default`,
  drainDelay: `seconds to keep serving after SIGTERM while HAProxy takes the node out (default ${DEFAULTS.drainDelay})`,
  drainTimeout: `seconds over which clients are closed during a drain (default ${DEFAULTS.drainTimeout})`,
  metricsToken: 'require Authorization: Bearer TOKEN on /metrics',
};
