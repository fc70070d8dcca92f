/** What a WebSocket path (`/ws/echo`, `/ws/v1`) plugs into the node. */
import type { Client } from './client.js';

export interface Endpoint {
  /** The URL path clients connect to. */
  readonly path: string;
  /** Called once the gate admitted a socket and the upgrade completed. */
  open(client: Client): void;
  /** A text or binary message from the client (already size-checked and UTF-8-checked by ws). */
  message(client: Client, data: Buffer, isBinary: boolean): void;
  /** The socket closed, for whatever reason. */
  close(client: Client): void;
  /** The node is stopping: release bus topics and timers. */
  stop?(): Promise<void>;
}
