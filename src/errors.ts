/**
 * Fanout's errors: the registry of close codes, error codes and refused-upgrade statuses lives in
 * src/protocol/codes.ts (shared with the browser SDK) and is re-exported here for the server;
 * this module adds the error classes and the codes of the commands' own errors. docs/errors.md
 * is generated from both (scripts/errors-doc.mjs).
 */
export {
  ApiErrorCode,
  CLOSE_CODES,
  CloseCode,
  closeCodeRecord,
  ERROR_CODES,
  ErrorCodeName,
  httpStatusOf,
  ProtocolErrorCode,
  shouldReconnect,
  shouldRetryUpgrade,
  UPGRADE_STATUSES,
  UpgradeStatus,
} from './protocol/codes.js';

/** The stable `code` of each of Fanout's own errors (docs/errors.md, "Errors of the commands"). */
export const FANOUT_ERRORS = {
  FANOUT_ERR_CONFIG: 'an invalid flag or environment variable (exit code 2); the message names the flag',
  FANOUT_ERR_BUS_UNAVAILABLE: 'the broker could not take a publish; answered `unavailable` / 503, never dropped silently',
  FANOUT_ERR_CLUSTER_NODE: '`fanout cluster`: a node exited before it listened or was ready (its `[nodeN]` lines say why)',
  FANOUT_ERR_HAPROXY_MISSING: '`fanout cluster`: `haproxy` is not on PATH',
} as const;

export type FanoutErrorCode = keyof typeof FANOUT_ERRORS;

/** Base class of Fanout's own errors: a stable `code` naming the area and the failure. */
export class FanoutError extends Error {
  readonly code: FanoutErrorCode;
  constructor(code: FanoutErrorCode, message: string, options?: { cause?: unknown }) {
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

  /**
   * What a client may be told: the message when it is Fanout's own sentence (no `cause`), and a
   * plain one when it carries a broker's or a store's text, which goes to the logs only.
   */
  get clientMessage(): string {
    return this.cause === undefined ? this.message : 'the message broker did not answer';
  }
}

/** The message of a caught value of unknown type: an Error's message, else its string form. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
