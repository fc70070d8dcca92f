/**
 * The registry of every answer a client can get to a failure, as records: WebSocket close codes
 * (with whether a client reconnects), error codes of the channel protocol and the HTTP API (with
 * their HTTP status), and the HTTP statuses of a refused upgrade (with whether to retry).
 *
 * Everything else comes from here: the server's `CloseCode`/`UpgradeStatus` constants, the SDK's
 * reconnect rule (`shouldReconnect`, `shouldRetryUpgrade`: the SDK imports this module, it does
 * not mirror it), the HTTP API's statuses (`httpStatusOf`), and the tables of docs/errors.md
 * (`scripts/errors-doc.mjs` writes them; a unit test fails when they differ). A test also checks
 * that every code recorded as sent by the node is sent somewhere in src/, and that src/ sends no
 * code that is not recorded.
 *
 * Browser-safe: no imports, no Node API.
 */

/** Who puts a close code on the wire. */
export type SentBy = 'node' | 'ws' | 'client' | 'nobody';

export interface CloseCodeRecord {
  readonly code: number;
  /** Whether a client should reconnect (with backoff) after it. */
  readonly reconnect: boolean;
  /** `node`: Fanout's code sends it; `ws`: the ws library does, on a protocol violation; `client`: only clients send it; `nobody`: what a client sees when no close frame came. */
  readonly sentBy: SentBy;
  readonly when: string;
}

/**
 * Close codes. 1xxx are RFC 6455's; Fanout's own are 4000–4499 "terminal" (do not reconnect
 * without changing something) and 4500–4999 "reconnect".
 */
export const CLOSE_CODES = {
  NORMAL: { code: 1000, reconnect: true, sentBy: 'client', when: 'a client ended the connection (the node closes with 1001 or one of the codes below)' },
  GOING_AWAY: { code: 1001, reconnect: true, sentBy: 'node', when: 'the node is draining or shutting down; HAProxy sends the reconnect to another node' },
  PROTOCOL_ERROR: {
    code: 1002,
    reconnect: false,
    sentBy: 'ws',
    when: 'the client broke RFC 6455: unmasked frame, reserved bits or opcode, bad close code, oversized or fragmented control frame',
  },
  UNSUPPORTED_DATA: { code: 1003, reconnect: false, sentBy: 'node', when: 'a binary message on `/ws/echo`' },
  ABNORMAL: { code: 1006, reconnect: true, sentBy: 'nobody', when: 'no close frame: the node terminated the socket (missed heartbeat, slow consumer cut) or the network dropped' },
  INVALID_PAYLOAD: { code: 1007, reconnect: false, sentBy: 'ws', when: 'a text message that is not valid UTF-8' },
  POLICY_VIOLATION: {
    code: 1008,
    reconnect: false,
    sentBy: 'node',
    when: 'over `--rate-limit` or `--rate-limit-bytes` on `/ws/echo`; persistent rate-limit abuse on any socket; over 128 fragments or the buffered-chunk cap for one message (ws)',
  },
  MESSAGE_TOO_BIG: { code: 1009, reconnect: false, sentBy: 'ws', when: 'a message over `--max-payload`' },
  INTERNAL_ERROR: { code: 1011, reconnect: true, sentBy: 'node', when: 'an unexpected server error while opening the socket' },
  TOKEN_EXPIRED: {
    code: 4001,
    reconnect: false,
    sentBy: 'node',
    when: "the identity expired while connected (swept every second): the JWT's `exp` passed without a `refresh`, the connect hook's `expires_at` passed (without `--refresh-hook`, or it failed until then); or its token was revoked (`POST /api/tokens/revoke`, `POST /api/users/{user}/revoke`); get a new token first (the SDK reconnects when its `token` is a function)",
  },
  REFUSED: {
    code: 4003,
    reconnect: false,
    sentBy: 'node',
    when: '`--refresh-hook` answered 403: the back end ended the session (the SDK does not reconnect)',
  },
  DISCONNECTED: {
    code: 4004,
    reconnect: false,
    sentBy: 'node',
    when: 'the back end disconnected the user (`POST /api/users/{user}/disconnect` with `"reconnect":false`, the default): do not reconnect',
  },
  DISCONNECTED_RECONNECT: {
    code: 4005,
    reconnect: true,
    sentBy: 'node',
    when: 'the back end disconnected the user and asked it to come back (`POST /api/users/{user}/disconnect` with `"reconnect":true`): reconnect (with backoff); an exception to the 4000–4499 terminal range',
  },
  SLOW_CONSUMER: {
    code: 4508,
    reconnect: true,
    sentBy: 'node',
    when: 'the frames the client did not ask for, unsent, passed `--max-buffered` (the socket is cut 1 s later)',
  },
  RESUBSCRIBE: {
    code: 4510,
    reconnect: true,
    sentBy: 'node',
    when: "`/ws/v1`: the node's bus dropped and history could not fill what its subscribers missed; reconnect and subscribe with `since`",
  },
} as const satisfies Record<string, CloseCodeRecord>;

export type CloseCodeName = keyof typeof CLOSE_CODES;

/** `CloseCode.GOING_AWAY` is 1001, and so on. */
export const CloseCode = mapValues(CLOSE_CODES, (r) => r.code) as { readonly [K in CloseCodeName]: (typeof CLOSE_CODES)[K]['code'] };
export type CloseCode = (typeof CloseCode)[CloseCodeName];

const byCode = new Map<number, CloseCodeRecord>(Object.values(CLOSE_CODES).map((r) => [r.code, r]));

/** The record of a close code, if it is one of ours. */
export function closeCodeRecord(code: number): CloseCodeRecord | undefined {
  return byCode.get(code);
}

/**
 * True when a client that got this close code should reconnect (with backoff). A code not in the
 * registry follows its range: 4000–4499 terminal, 4500–4999 reconnect, anything else reconnect.
 */
export function shouldReconnect(code: number): boolean {
  const record = byCode.get(code);
  if (record) return record.reconnect;
  return !(code >= 4000 && code < 4500);
}

// ------------------------------------------------------------------ error codes

export interface ErrorCodeRecord {
  /** The status the HTTP API answers with this code. */
  readonly status: number;
  /** `socket`: an `error` frame of `/ws/v1`; `api`: a body of the HTTP API; both when shared. */
  readonly where: 'both' | 'socket' | 'api';
  readonly when: string;
}

/** Codes of `{"type":"error","code":…}` frames and of the HTTP API's `{"error":…}` bodies. */
export const ERROR_CODES = {
  bad_request: {
    status: 400,
    where: 'both',
    when: 'a frame or body that is not valid: not JSON, unknown type, missing/invalid channel, bad id/since/limit/before, missing data, data nested past 100 levels, a bad idempotency_key (or Idempotency-Key header), binary frame, double subscribe, too many subscriptions; an SSE POST of an empty array, of more than 100 frames, or with a `?seq=` that is not a positive integer',
  },
  unauthorized: {
    status: 401,
    where: 'both',
    when: "HTTP API without or with a wrong `--api-key`; the upgrade check (`POST /ws/v1/check`) of an upgrade that would get 401; a `refresh` or a `subscribe` with `token` whose token is not valid (bad signature, expired, another `sub`, another `channel`, no `exp`), or on a node without `--jwt-*` (the old token stands until its own `exp`)",
  },
  forbidden: {
    status: 403,
    where: 'both',
    when: "the identity's patterns (the token's `channels`/`publish` claims, the connect hook's answer) and the `--anonymous-*` namespaces do not allow it, or `--subscribe-hook`/`--publish-hook` answered 403 (its `reason` is the message); the upgrade check of an upgrade that would get 403",
  },
  not_found: {
    status: 404,
    where: 'both',
    when: 'unsubscribe without a subscription; presence on a channel without presence; `GET /api/channels/C/latest` when the channel has no latest message; the HTTP API is off; an SSE POST for a session that does not exist (closed, expired, its node stopped, or another address)',
  },
  method_not_allowed: { status: 405, where: 'api', when: 'an HTTP API path with another method than its own (`Allow` says which)' },
  out_of_order: {
    status: 409,
    where: 'api',
    when: "an SSE POST whose `?seq=` skips ahead of the session's next one (a batch before it never arrived): nothing was run; the SDK ends the socket (1006), reconnects and recovers",
  },
  too_large: {
    status: 413,
    where: 'both',
    when: 'an HTTP API or SSE POST body over `--max-payload` (over WebSocket the socket closes with 1009); a publish whose data `--publish-hook` replaced with more than `--max-payload` bytes (nothing published)',
  },
  rate_limited: {
    status: 429,
    where: 'both',
    when: "the upgrade check of an upgrade that would get 429; more than `--rate-limit` SSE POSTs in one second for one session; a frame over `--rate-limit` or `--rate-limit-bytes` (dropped), or more requests in flight than the connection's `--max-buffered` holds replies for, or 8 back-end hook calls already in flight from the client's address (all its connections on the node)",
  },
  internal: { status: 500, where: 'both', when: 'an unexpected server error answering that request (never with its own text)' },
  unavailable: {
    status: 503,
    where: 'both',
    when: 'the bus or history store is down, or `--subscribe-hook`/`--publish-hook` timed out, failed, answered neither 200 nor 403, or `--hook-concurrency` calls were in flight: nothing was published or subscribed; retry',
  },
} as const satisfies Record<string, ErrorCodeRecord>;

export type ErrorCodeName = keyof typeof ERROR_CODES;

/** The codes an `error` frame of the channel protocol carries. */
export type ProtocolErrorCode = { [K in ErrorCodeName]: (typeof ERROR_CODES)[K]['where'] extends 'api' ? never : K }[ErrorCodeName];
/** The codes the HTTP API's bodies carry. */
export type ApiErrorCode = { [K in ErrorCodeName]: (typeof ERROR_CODES)[K]['where'] extends 'socket' ? never : K }[ErrorCodeName];

/** The HTTP status the API answers with `code`. */
export function httpStatusOf(code: ErrorCodeName): number {
  return ERROR_CODES[code].status;
}

// ------------------------------------------------------------------ refused upgrades

export interface UpgradeStatusRecord {
  readonly status: number;
  /** Whether a client should try the upgrade again later (with backoff). */
  readonly retry: boolean;
  readonly when: string;
}

/**
 * HTTP statuses an upgrade request can get instead of a 101 (docs/security.md says which control
 * answers each). Behind HAProxy, 400, 408 and 503 may also come from HAProxy itself.
 */
export const UPGRADE_STATUSES = {
  BAD_REQUEST: {
    status: 400,
    retry: false,
    when: 'a malformed HTTP request or WebSocket handshake; plain HTTP on a TLS port (through HAProxy also: over 101 headers)',
  },
  UNAUTHORIZED: {
    status: 401,
    retry: false,
    when: '`--jwt-*` configured and the token is missing, malformed, forged, expired, of the wrong algorithm, `alg: none`, without `sub`, with a `channels` or `publish` claim past the bounds, or failing `--jwt-issuer`/`--jwt-audience`, or revoked (`POST /api/tokens/revoke`, `POST /api/users/{user}/revoke`) (`WWW-Authenticate: Bearer`); or `--connect-hook` answered 401',
  },
  FORBIDDEN: { status: 403, retry: false, when: 'the `Origin` is not allowed (`--allowed-origins`, default same origin), or `--connect-hook` answered 403' },
  NOT_FOUND: { status: 404, retry: false, when: 'no WebSocket endpoint at that path' },
  METHOD_NOT_ALLOWED: { status: 405, retry: false, when: 'an upgrade with another method than GET' },
  REQUEST_TIMEOUT: { status: 408, retry: true, when: 'the request headers did not arrive within `--handshake-timeout`' },
  UPGRADE_REQUIRED: { status: 426, retry: false, when: 'a plain GET on a WebSocket path (`/ws/echo`, `/ws/v1`)' },
  TOO_MANY_REQUESTS: { status: 429, retry: true, when: "the client's address has `--max-connections-per-ip` sockets on this node (`Retry-After`)" },
  HEADERS_TOO_LARGE: { status: 431, retry: false, when: 'request headers over 16 KiB or 2000 lines' },
  INTERNAL: { status: 500, retry: true, when: 'an unexpected failure of the upgrade gate (logged)' },
  UNAVAILABLE: {
    status: 503,
    retry: true,
    when: 'the node is draining or closed, has `--max-connections` sockets, cannot fetch `--jwks-url`, or `--connect-hook` timed out, failed, answered neither 200, 401 nor 403, or its share of `--hook-concurrency` calls (half), or 4 from one client address, were in flight (`Retry-After`)',
  },
} as const satisfies Record<string, UpgradeStatusRecord>;

export type UpgradeStatusName = keyof typeof UPGRADE_STATUSES;

/** `UpgradeStatus.FORBIDDEN` is 403, and so on. */
export const UpgradeStatus = mapValues(UPGRADE_STATUSES, (r) => r.status) as { readonly [K in UpgradeStatusName]: (typeof UPGRADE_STATUSES)[K]['status'] };

const byStatus = new Map<number, UpgradeStatusRecord>(Object.values(UPGRADE_STATUSES).map((r) => [r.status, r]));

/**
 * True when a refused upgrade is worth trying again later: the status says "not now" (408, 429,
 * 503), not "never like this" (400, 401, 403, 404, …). An unknown status is retried. Only Node's
 * `ws` reports the status; a browser sees a refused upgrade as a plain 1006.
 */
export function shouldRetryUpgrade(status: number): boolean {
  return byStatus.get(status)?.retry ?? true;
}

function mapValues<T extends Record<string, object>, V>(records: T, pick: (record: T[keyof T]) => V): Record<keyof T, V> {
  const out = {} as Record<keyof T, V>;
  for (const key of Object.keys(records) as Array<keyof T>) out[key] = pick(records[key]);
  return Object.freeze(out);
}
