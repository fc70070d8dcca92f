/** The SDK's one error class: a stable `code` saying what failed, so apps can branch on it. */

/**
 * Codes of {@link FanoutClientError}. Server error-frame codes (`bad_request`, `unauthorized`,
 * `forbidden`, `not_found`, `rate_limited`, `unavailable`, `too_large`, `internal`) come through unchanged;
 * the rest are the SDK's own:
 * - `disconnected`: the request was sent, then the connection dropped before the reply. For a
 *   publish the outcome is unknown: the message may or may not have been published.
 * - `timeout`: no reply within `requestTimeout` (`sent` says whether it ever left the client).
 * - `closed`: the client was closed (by you, or by a close code that forbids reconnecting).
 * - `queue_full`: more than `maxQueued` requests waited for a connection.
 * - `bad_frame`: the server sent something that is not a protocol frame (reported, then ignored).
 * - `token`: the token function threw or rejected.
 */
export type ClientErrorCode =
  | 'bad_request'
  | 'unauthorized'
  | 'forbidden'
  | 'not_found'
  | 'rate_limited'
  | 'unavailable'
  | 'too_large'
  | 'internal'
  | 'disconnected'
  | 'timeout'
  | 'closed'
  | 'queue_full'
  | 'bad_frame'
  | 'token';

export class FanoutClientError extends Error {
  readonly code: ClientErrorCode;
  /** The channel the failure concerns, when there is one. */
  readonly channel: string | undefined;
  /** For request failures: true when the request reached the socket before it failed. */
  readonly sent: boolean;

  constructor(code: ClientErrorCode, message: string, options: { channel?: string; sent?: boolean; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'FanoutClientError';
    this.code = code;
    this.channel = options.channel;
    this.sent = options.sent ?? false;
  }
}
