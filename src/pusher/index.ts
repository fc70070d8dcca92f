/**
 * The Pusher feature (issue 30, docs/pusher.md): `WS /app/{key}` and the HTTP API under
 * `/apps/{id}/`, registered by the composition root on the node's parts it is handed.
 */
import type { ChannelService } from '../channels/index.js';
import type { Config } from '../config/schema.js';
import type { Logger } from '../logger.js';
import type { Endpoint } from '../node/endpoint.js';
import type { Outbox } from '../node/outbox.js';
import type { Json } from '../protocol/frames.js';
import type { Client } from '../transport/client.js';
import type { Router } from '../transport/router.js';
import { addPusherApiRoutes, MAX_LISTED, PusherOp } from './api.js';
import { PusherEndpoint } from './endpoint.js';
import { UnknownAppEndpoint } from './unknown-app.js';
import type { PusherWebhooks } from './webhooks.js';

export { isPusherInternal } from './channels.js';
export { PusherWebhooks } from './webhooks.js';

/** What the Pusher feature uses of its node. */
export interface PusherHost {
  readonly config: Pick<Config, 'pusherAppId' | 'pusherKey' | 'pusherSecret' | 'pusherMaxEventBytes' | 'pusherClientEventRate' | 'maxSubscriptions' | 'heartbeat'>;
  readonly service: ChannelService;
  readonly outbox: Pick<Outbox, 'send' | 'broadcast'>;
  readonly logger: Logger;
  readonly router: Router;
  addEndpoint(endpoint: Endpoint): void;
  closeClient(client: Client, code: number, reason: string): void;
  /** --pusher-webhook, when on. */
  readonly webhooks?: PusherWebhooks | undefined;
  /** The cluster calls (node/cluster-calls.ts). */
  readonly calls: {
    handle(op: string, handler: (args: Json) => Json | Promise<Json>): void;
    call(op: string, args: Json): Promise<{ readonly results: ReadonlyMap<string, Json> }>;
  };
}

/** Registers the app of --pusher-app-id/--pusher-key/--pusher-secret; undefined when they are not given. */
export function addPusher(host: PusherHost): PusherEndpoint | undefined {
  const { config, service } = host;
  if (config.pusherAppId === undefined || config.pusherKey === undefined || config.pusherSecret === undefined) return undefined;
  const app = { id: config.pusherAppId, key: config.pusherKey, secret: config.pusherSecret };
  const closeClient = (client: Client, code: number, reason: string): void => host.closeClient(client, code, reason);
  const endpoint = new PusherEndpoint({
    app,
    service,
    outbox: host.outbox,
    logger: host.logger,
    maxSubscriptions: config.maxSubscriptions,
    maxEventBytes: config.pusherMaxEventBytes,
    clientEventRate: config.pusherClientEventRate,
    heartbeat: config.heartbeat,
    closeClient,
    webhooks: host.webhooks,
  });
  host.addEndpoint(endpoint);
  host.addEndpoint(new UnknownAppEndpoint({ outbox: host.outbox, closeClient }));
  // Presence needs the store's heartbeats; the channel endpoint starts them only when --presence names channels.
  if (service.presenceChannels.empty) service.presence.start((channel, entry) => endpoint.departed(channel, entry.user));
  host.calls.handle(PusherOp.CHANNELS, (args) => {
    const prefix = typeof (args as { prefix?: unknown }).prefix === 'string' ? (args as { prefix: string }).prefix : '';
    return endpoint.localChannels(prefix).slice(0, MAX_LISTED);
  });
  host.calls.handle(PusherOp.CHANNEL, (args) => endpoint.subscribers(String((args as { channel?: unknown }).channel)));
  host.calls.handle(PusherOp.TERMINATE, (args) => endpoint.terminate(String((args as { user?: unknown }).user)));
  addPusherApiRoutes(host.router, {
    app,
    service,
    maxEventBytes: config.pusherMaxEventBytes,
    call: async (op, args) => (await host.calls.call(op, args)).results,
  });
  return endpoint;
}
