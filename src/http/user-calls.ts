/**
 * What each node does when the server API on users calls it (docs/auth.md, "Server API on
 * users"): the handlers of the cluster calls (node/cluster-calls.ts) that users-api.ts makes. Each
 * acts on this node's sockets only and answers with what it touched; the caller sums the nodes.
 *
 * Bounded per call: a user's connections are found in the node's index by user (no scan), except
 * for a token id, which names no user and costs one pass over the node's sockets; a listing
 * answers at most {@link MAX_LISTED_CONNECTIONS} connections per node.
 */
import { CloseCode } from '../errors.js';
import { CHANNEL_PATH, type Json } from '../protocol/frames.js';
import { parseRevocation, type RevocationEntry } from '../stores/store.js';
import type { Client, Identity } from '../transport/client.js';

/** A user's connections one node lists at most. */
export const MAX_LISTED_CONNECTIONS = 100;

/** The operations' names, shared by both ends. */
export const UserOp = {
  DISCONNECT: 'users.disconnect',
  UNSUBSCRIBE: 'users.unsubscribe',
  SUBSCRIBE: 'users.subscribe',
  CONNECTIONS: 'users.connections',
  REVOKE: 'tokens.revoke',
  CHANNELS: 'channels.list',
  CHANNEL: 'channels.info',
} as const;

/** What the handlers use of their node. */
export interface UserCallsHost {
  readonly nodeId: string;
  clientsOf(user: string): Client[];
  clients(): Client[];
  closeClient(client: Client, code: number, reason: string): void;
  readonly revocations: { add(entry: RevocationEntry): void; revoked(identity: Identity): boolean };
  /** The channel endpoint's server-side actions (channels/server-side.ts). */
  readonly channels: {
    subscribe(client: Client, channel: string): boolean;
    unsubscribe(client: Client, channel: string): boolean;
    channelsOf(client: Client): string[];
    subscribers(channel: string): number;
    channels(prefix: string, after: string, limit: number): { readonly channels: ReadonlyArray<readonly [string, number]>; readonly more: boolean };
  };
}

/** Where the handlers are registered: the node's cluster calls. */
export interface CallRegistry {
  handle(op: string, handler: (args: Json) => Json | Promise<Json>): void;
}

/** Registers every handler of the server API on users. */
export function registerUserCalls(calls: CallRegistry, host: UserCallsHost): void {
  calls.handle(UserOp.DISCONNECT, (args) => {
    const { user, reconnect } = fields(args);
    if (typeof user !== 'string') return { touched: 0 };
    const code = reconnect === true ? CloseCode.DISCONNECTED_RECONNECT : CloseCode.DISCONNECTED;
    const clients = host.clientsOf(user);
    for (const client of clients) host.closeClient(client, code, 'disconnected by the server');
    return { touched: clients.length };
  });
  calls.handle(UserOp.UNSUBSCRIBE, (args) => {
    const { user, channel } = fields(args);
    if (typeof user !== 'string' || typeof channel !== 'string') return { touched: 0 };
    return { touched: onChannelClients(host, user).filter((client) => host.channels.unsubscribe(client, channel)).length };
  });
  calls.handle(UserOp.SUBSCRIBE, (args) => {
    const { user, channel } = fields(args);
    if (typeof user !== 'string' || typeof channel !== 'string') return { touched: 0 };
    return { touched: onChannelClients(host, user).filter((client) => host.channels.subscribe(client, channel)).length };
  });
  calls.handle(UserOp.CONNECTIONS, (args) => {
    const { user } = fields(args);
    if (typeof user !== 'string') return { connections: [], more: false };
    const clients = host.clientsOf(user);
    const listed = clients.slice(0, MAX_LISTED_CONNECTIONS).map((client) => ({
      client: client.id,
      node: host.nodeId,
      since: Math.floor(client.since / 1000),
      channels: host.channels.channelsOf(client).sort(),
    }));
    return { connections: listed, more: clients.length > listed.length };
  });
  calls.handle(UserOp.REVOKE, (args) => {
    const entry = parseRevocation(fields(args).entry);
    if (!entry) return { touched: 0 };
    host.revocations.add(entry);
    // A user's connections are indexed; a token id names no user: one pass over this node's sockets.
    const candidates = entry.kind === 'user' ? host.clientsOf(entry.id) : host.clients();
    let touched = 0;
    for (const client of candidates) {
      if (!host.revocations.revoked(client.identity)) continue;
      host.closeClient(client, CloseCode.TOKEN_EXPIRED, 'token revoked');
      touched++;
    }
    return { touched };
  });
  calls.handle(UserOp.CHANNELS, (args) => {
    const { prefix, after, limit } = fields(args);
    if (typeof prefix !== 'string' || typeof after !== 'string' || typeof limit !== 'number') return { channels: [], more: false };
    const page = host.channels.channels(prefix, after, Math.min(limit, 1000));
    return { channels: page.channels.map(([name, n]) => [name, n]), more: page.more };
  });
  calls.handle(UserOp.CHANNEL, (args) => {
    const { channel } = fields(args);
    return { subscribers: typeof channel === 'string' ? host.channels.subscribers(channel) : 0 };
  });
}

/** The user's `/ws/v1` connections (server-side subscriptions exist only there). */
function onChannelClients(host: UserCallsHost, user: string): Client[] {
  return host.clientsOf(user).filter((client) => client.endpoint === CHANNEL_PATH && client.open);
}

function fields(args: Json): Record<string, Json | undefined> {
  return typeof args === 'object' && args !== null && !Array.isArray(args) ? args : {};
}
