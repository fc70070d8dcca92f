/**
 * The Pusher feature (issue 30, docs/pusher.md): for each app, `WS /app/{key}` and the HTTP API
 * under `/apps/{id}/`, registered by the composition root on the node's parts it is handed.
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
export { PusherWebhooks, pusherWebhookSet } from './webhooks.js';

/** What the Pusher feature uses of its node. */
export interface PusherHost {
  readonly config: Pick<Config, 'pusherApps' | 'maxSubscriptions' | 'heartbeat'>;
  readonly service: ChannelService;
  readonly outbox: Pick<Outbox, 'send' | 'broadcast'>;
  readonly logger: Logger;
  readonly router: Router;
  addEndpoint(endpoint: Endpoint): void;
  closeClient(client: Client, code: number, reason: string): void;
  /** Each app's Pusher-format webhooks, by app id (apps with a webhook only). */
  readonly webhooks?: ReadonlyMap<string, PusherWebhooks> | undefined;
  /** The cluster calls (node/cluster-calls.ts). */
  readonly calls: {
    handle(op: string, handler: (args: Json) => Json | Promise<Json>): void;
    call(op: string, args: Json): Promise<{ readonly results: ReadonlyMap<string, Json> }>;
  };
}

/**
 * Registers every app of `config.pusherApps` (the flags' app and `pusher-apps:`'s): each its own
 * `WS /app/{key}` endpoint and `/apps/{id}/…` routes, signed with its own secret; its channels
 * are its own (channels.ts names them by app id). Returns the endpoints, by app id.
 */
export function addPusher(host: PusherHost): ReadonlyMap<string, PusherEndpoint> {
  const { config, service } = host;
  const endpoints = new Map<string, PusherEndpoint>();
  if (config.pusherApps.length === 0) return endpoints;
  const closeClient = (client: Client, code: number, reason: string): void => host.closeClient(client, code, reason);
  for (const app of config.pusherApps) {
    const endpoint = new PusherEndpoint({
      app,
      service,
      outbox: host.outbox,
      logger: host.logger,
      maxSubscriptions: config.maxSubscriptions,
      maxEventBytes: app.maxEventBytes,
      clientEventRate: app.clientEventRate,
      heartbeat: config.heartbeat,
      closeClient,
      webhooks: host.webhooks?.get(app.id),
    });
    endpoints.set(app.id, endpoint);
    host.addEndpoint(endpoint);
    addPusherApiRoutes(host.router, {
      app,
      service,
      maxEventBytes: app.maxEventBytes,
      call: async (op, args) => (await host.calls.call(op, { ...(args as Record<string, Json>), app: app.id })).results,
    });
  }
  // Any other key under /app/: Pusher's 4001.
  host.addEndpoint(new UnknownAppEndpoint({ outbox: host.outbox, closeClient }));
  // Presence needs the store's heartbeats; the channel endpoint starts them only when --presence names channels.
  // Each endpoint takes the departures of its own app's channels.
  if (service.presenceChannels.empty) service.presence.start((channel, entry) => endpoints.forEach((endpoint) => endpoint.departed(channel, entry.user)));
  // The cluster calls name their app: each node answers for that app's endpoint (nothing for an app it does not serve).
  const endpointOf = (args: Json): PusherEndpoint | undefined => endpoints.get(String((args as { app?: unknown }).app));
  host.calls.handle(PusherOp.CHANNELS, (args) => {
    const prefix = typeof (args as { prefix?: unknown }).prefix === 'string' ? (args as { prefix: string }).prefix : '';
    return endpointOf(args)?.localChannels(prefix).slice(0, MAX_LISTED) ?? [];
  });
  host.calls.handle(PusherOp.CHANNEL, (args) => endpointOf(args)?.subscribers(String((args as { channel?: unknown }).channel)) ?? 0);
  host.calls.handle(PusherOp.TERMINATE, (args) => endpointOf(args)?.terminate(String((args as { user?: unknown }).user)) ?? 0);
  return endpoints;
}
