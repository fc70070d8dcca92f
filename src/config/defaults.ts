/**
 * Named constants, so docs, tests and code agree: the defaults of the `fanout serve` flags, and
 * the fixed timings that are not flags, each with the reason for its value.
 */

/** Defaults of the `fanout serve` flags. */
export const DEFAULTS = {
  port: 3000,
  host: '0.0.0.0',
  bus: 'memory',
  busPrefix: 'fanout',
  logLevel: 'info',
  /** auto: pretty lines on a terminal, JSON lines otherwise (the pino convention). */
  logFormat: 'auto',
  maxPayload: 65536,
  /** Messages per second per connection: far above what a person or an app's socket sends, low enough that one socket cannot flood a node. */
  rateLimit: 1000,
  /**
   * Bytes per second one connection may send (burst: {@link RATE_LIMIT_BYTES_BURST} × --max-payload):
   * far above a person or an app, low enough that one socket cannot fill a node's history quickly.
   */
  rateLimitBytes: 1024 * 1024,
  maxConnections: 0,
  maxConnectionsPerIp: 0,
  handshakeTimeout: 10,
  heartbeat: 25,
  maxBuffered: 1024 * 1024,
  coalesceMs: 'auto' as number | 'auto',
  historySize: 100,
  historyTtl: 300,
  /** Bytes of history the memory store keeps in process, all channels together (0: no cap). */
  historyMaxBytes: 256 * 1024 * 1024,
  /** Seconds a publish's `idempotency_key` is remembered per channel (issue 27): a repeat within it stores nothing. */
  idempotencyWindow: 300,
  presenceTtl: 15,
  maxSubscriptions: 100,
  drainDelay: 5,
  drainTimeout: 5,
  /** Seconds a back-end hook call may take: a back end that answers within it is healthy, and a client waits no longer than a reconnect. */
  hookTimeout: 3,
  /** Hook calls in flight per node: enough for a busy node's handshakes, few enough that a dead back end costs little. */
  hookConcurrency: 64,
  /** Seconds a webhook event is retried before it is dropped: long enough to ride out a back end's restart. */
  webhookRetry: 60,
  /** Pusher's documented limits (docs/pusher.md): 10 KB of event data, 10 client events per second per connection. */
  pusherMaxEventBytes: 10 * 1024,
  pusherClientEventRate: 10,
} as const;

/** --rate-limit-bytes: the burst a connection may send at once, in --max-payload messages. */
export const RATE_LIMIT_BYTES_BURST = 16;

/** Fixed timings (not flags). Milliseconds unless the name says otherwise. */
export const TIMINGS = {
  /**
   * During a drain, clients are closed in slices at most this often, spread over --drain-timeout:
   * often enough that the spread is smooth, rarely enough that a big drain is not a busy loop.
   */
  drainTickMs: 50,
  /**
   * How long a subscription (or a recovery catch-up) waits for its fence to come back over the
   * bus before it answers `unavailable`: a healthy broker answers in milliseconds, and a client
   * should not wait longer than a reconnect would take.
   */
  joinTimeoutMs: 5000,
  /** How often the gate looks for sockets whose token expired: tokens expire to the second. */
  expirySweepMs: 1000,
  /**
   * A slow consumer's close frame queues behind the backlog it is not reading; the socket is cut
   * this long after, so one stuck client cannot hold its buffers.
   */
  slowConsumerCutMs: 1000,
  /** Bus publish failures are logged at most this often: during an outage every publish fails. */
  publishErrorLogMs: 10_000,
  /**
   * A message stored but not delivered live, or a bus or store error nobody waits for, is logged
   * at most this often per kind (with the count of those not logged); every one is counted.
   */
  unnoticedLogMs: 10_000,
  /** A topic whose subscribe failed while the bus stayed connected is subscribed again after 100 ms, doubling up to this. */
  resubscribeMaxMs: 5000,
  /** Back-end hook failures are logged at most this often per hook: while the back end is down every call fails. */
  hookErrorLogMs: 10_000,
  /**
   * Presence heartbeats come every `presenceHeartbeatFraction` of --presence-ttl (a third: a node
   * must miss two beats in a row before Redis declares it dead), and at least this often apart.
   */
  presenceHeartbeatFraction: 1 / 3,
  presenceHeartbeatMinMs: 100,
  /** On close, sockets that ignore the close frame are cut after this grace. */
  closeGraceMs: 1000,
  /** AMQP heartbeat in seconds unless the --bus URL sets one: a dead broker is noticed within two of them. */
  amqpHeartbeatS: 10,
  /** JWKS (--jwks-url): a fetch gives up after this long and the upgrade is answered 503. */
  jwksTimeoutMs: 5000,
  /** JWKS: after a fetch, no new one for this long, even for an unknown `kid` (an attacker cannot make the node hammer the IdP). */
  jwksCooldownMs: 30_000,
  /** JWKS: a fetched key set is kept this long, so rotated keys are picked up. */
  jwksCacheMaxAgeMs: 600_000,
} as const;
