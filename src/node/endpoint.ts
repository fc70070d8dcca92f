/** What a WebSocket path (`/ws/echo`, `/ws/v1`) plugs into the node. */
import type { Client, Identity } from '../transport/client.js';

export interface Endpoint {
  /** The URL path clients connect to. */
  readonly path: string;
  /** True: the endpoint serves every path that begins with {@link path} (`/app/` answers `/app/{any key}`); `Client.endpoint` is then the prefix, so metrics stay bounded. */
  readonly prefix?: boolean;
  /** Called once the gate admitted a socket and the upgrade completed. */
  open(client: Client): void;
  /** A text or binary message from the client (already size-checked and UTF-8-checked by ws). */
  message(client: Client, data: Buffer, isBinary: boolean): void;
  /**
   * The client went over --rate-limit or --rate-limit-bytes with this message (which is dropped);
   * `limit` names the flag and its value, e.g. `--rate-limit (1000/s)`. An endpoint with a
   * protocol answers here (the channel protocol sends a `rate_limited` error frame); without this
   * method the node closes the socket with 1008.
   */
  rateLimited?(client: Client, data: Buffer, limit: string): void;
  /**
   * The connection's identity was renewed (a `refresh` frame, --refresh-hook): `client.identity`
   * is the new one. An endpoint with rights per channel drops what the new one no longer allows.
   */
  renewed?(client: Client, previous: Identity): void;
  /**
   * An application-level ping the client can see (browsers never see WebSocket pings): one
   * complete pre-framed frame the node writes to a socket of this endpoint to which nothing the
   * client can see was written for a whole --heartbeat interval (node/sockets.ts). Without it,
   * nothing of the kind is written.
   */
  readonly idlePing?: Buffer | undefined;
  /** The socket closed, for whatever reason. */
  close(client: Client): void;
  /** The node is stopping: release bus topics and timers. */
  stop?(): Promise<void>;
}
