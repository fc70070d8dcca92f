/**
 * The one registry of Fanout's error codes and WebSocket close codes.
 *
 * Every failure a user can see is listed here once, with the answer it maps to (an HTTP status
 * before the upgrade, a close code after it) and whether a client should reconnect.
 * docs/errors.md documents the same table; keep the two in step.
 */

/** Close codes sent on a WebSocket. 1xxx are RFC 6455; 4000–4499 "terminal", 4500–4999 "reconnect". */
export const CloseCode = {
  /** Normal closure. */
  NORMAL: 1000,
  /** The node is going away (drain, shutdown): reconnect, preferably to another node. */
  GOING_AWAY: 1001,
  /** The peer sent a data type the endpoint does not take (binary on /ws/echo). */
  UNSUPPORTED_DATA: 1003,
  /** The peer broke RFC 6455 (unmasked frame, reserved bits or opcode, bad close code); sent by ws. */
  PROTOCOL_ERROR: 1002,
  /** A text frame was not valid UTF-8. */
  INVALID_PAYLOAD: 1007,
  /**
   * Policy violation: over --rate-limit on the echo socket, persistent rate-limit abuse on any
   * socket, or too many fragments / buffered chunks for one message (sent by ws).
   */
  POLICY_VIOLATION: 1008,
  /** A message over --max-payload. */
  MESSAGE_TOO_BIG: 1009,
  /** An unexpected server error. */
  INTERNAL_ERROR: 1011,
  /** The server is restarting: reconnect. */
  SERVICE_RESTART: 1012,
  /** Try again later: the node is overloaded. */
  TRY_AGAIN_LATER: 1013,

  /** Terminal: the token expired; get a new token before reconnecting. */
  TOKEN_EXPIRED: 4001,
  /** Terminal: the connection is not allowed (forbidden origin or credentials after the fact). */
  FORBIDDEN: 4003,
  /** Terminal: the client sent frames the protocol cannot parse, repeatedly. */
  BAD_REQUEST: 4400,

  /** Reconnect: the client could not keep up; its unsent bytes passed --max-buffered. */
  SLOW_CONSUMER: 4508,
  /** Reconnect: the node is draining; reconnect (HAProxy sends you to another node). */
  DRAINING: 4503,
  /** Reconnect: the node lost messages of a subscribed channel (bus outage) that history could not fill; resubscribe with `since`. */
  RESUBSCRIBE: 4510,
} as const;

export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];

/** True when a client that got this close code should reconnect. */
export function shouldReconnect(code: number): boolean {
  if (code >= 4000 && code < 4500) return false;
  if (code === CloseCode.POLICY_VIOLATION || code === CloseCode.MESSAGE_TOO_BIG) return false;
  if (code === CloseCode.UNSUPPORTED_DATA || code === CloseCode.INVALID_PAYLOAD || code === CloseCode.PROTOCOL_ERROR) return false;
  return true;
}

/**
 * HTTP statuses an upgrade request can get instead of a 101 (docs/security.md says which control
 * answers each). Behind HAProxy, 400, 408 and 503 may also come from HAProxy itself.
 */
export const UpgradeStatus = {
  /** Malformed request or handshake. */
  BAD_REQUEST: 400,
  /** No, malformed, forged, expired or wrong-algorithm token (with WWW-Authenticate: Bearer). */
  UNAUTHORIZED: 401,
  /** The Origin is not allowed. */
  FORBIDDEN: 403,
  /** No WebSocket endpoint at that path. */
  NOT_FOUND: 404,
  /** The request headers did not arrive within --handshake-timeout. */
  REQUEST_TIMEOUT: 408,
  /** A plain GET on a WebSocket path. */
  UPGRADE_REQUIRED: 426,
  /** --max-connections-per-ip reached for the client's address. */
  TOO_MANY_REQUESTS: 429,
  /** Request headers over 16 KiB or 2000 lines. */
  HEADERS_TOO_LARGE: 431,
  /** Draining, --max-connections reached, or the JWKS could not be fetched (Retry-After). */
  UNAVAILABLE: 503,
} as const;

/** Error codes carried in `{"type":"error","code":…}` frames of the channel protocol. */
export const ProtocolErrorCode = {
  BAD_REQUEST: 'bad_request',
  FORBIDDEN: 'forbidden',
  NOT_FOUND: 'not_found',
  RATE_LIMITED: 'rate_limited',
  UNAVAILABLE: 'unavailable',
  TOO_LARGE: 'too_large',
  INTERNAL: 'internal',
} as const;

export type ProtocolErrorCode = (typeof ProtocolErrorCode)[keyof typeof ProtocolErrorCode];

/** Error codes in the bodies of the HTTP API (`{"error":CODE,"message":…}`): the protocol's, plus `unauthorized` (401). */
export const ApiErrorCode = { ...ProtocolErrorCode, UNAUTHORIZED: 'unauthorized' } as const;

export type ApiErrorCode = (typeof ApiErrorCode)[keyof typeof ApiErrorCode];

/** Base class of Fanout's own errors: a stable `code` naming the area and the failure. */
export class FanoutError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'FanoutError';
    this.code = code;
  }
}

/** An invalid command-line flag or environment variable; `flag` is the flag as the user types it. */
export class ConfigError extends FanoutError {
  readonly flag: string;
  /** What is wrong with the value, without the `invalid --flag:` prefix. */
  readonly reason: string;
  constructor(flag: string, message: string) {
    super('FANOUT_ERR_CONFIG', `invalid ${flag}: ${message}`);
    this.name = 'ConfigError';
    this.flag = flag;
    this.reason = message;
  }
}

/** The broker could not take a publish (down, disconnected, refused). Never a silent drop. */
export class BusUnavailableError extends FanoutError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('FANOUT_ERR_BUS_UNAVAILABLE', message, options);
    this.name = 'BusUnavailableError';
  }
}
