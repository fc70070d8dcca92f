/**
 * The composition root: builds a node's core, then registers its features on it, each with a
 * narrow context (what it uses, not the node):
 *
 * - `/ws/echo` (src/echo): local first, over the node's topic router;
 * - `/ws/v1` channels (src/channels): ordered by the store, over the route the store publishes on
 *   (the node's bus, or a separate `--history` Redis with a topic router of its own);
 * - the HTTP routes (src/http): health, metrics, the API for back ends, the demo page;
 * - `/app/{key}` and `/apps/{id}/…` (src/pusher): the Pusher Channels protocol over the channel service;
 * - --kafka-ingest (src/ingest): a Kafka topic's records published through the channel service;
 * - the metrics: the node's registry (src/metrics.ts) with every part's families registered on it,
 *   each declared beside what it measures, each part handed only its own.
 *
 * docs/architecture.md draws the two delivery models side by side.
 */
import { MemoryBus } from './brokers/memory/bus.js';
import { RedisBus } from './brokers/redis/bus.js';
import { ChannelEndpoint } from './channels/endpoint.js';
import type { ChannelHooks } from './channels/hook-calls.js';
import { HistoryMetrics } from './channels/metrics.js';
import type { ChannelOccupancy } from './channels/occupancy.js';
import { ChannelService, channelOfTopic, channelTopic } from './channels/service.js';
import type { Config, KafkaIngestTarget } from './config/schema.js';
import type { NatsAddress } from './config/bus-address.js';
import { ConfigError, errorMessage } from './errors.js';
import { createStores, type StoreTarget } from './brokers/create-stores.js';
import { historyTtlOf, longestIdempotencyWindow, Namespaces, storedHistorySize, storedHistoryTtl } from './config/namespaces.js';
import { JetStreamLog } from './brokers/nats/jetstream.js';
import { KafkaLog } from './brokers/kafka/log.js';
import type { KafkaAddress } from './config/bus-address.js';
import { HookMetrics } from './hooks/metrics.js';
import { KafkaIngest } from './ingest/kafka-ingest.js';
import { IngestMetrics } from './ingest/metrics.js';
import { addApiRoutes } from './http/api.js';
import { registerUserCalls } from './http/user-calls.js';
import { addDemoPageRoutes } from './http/demo-page.js';
import { addHealthRoutes } from './http/health.js';
import { addMetricsRoutes } from './http/metrics.js';
import { addPageConfigRoute } from './http/page-config.js';
import { EchoEndpoint } from './echo/endpoint.js';
import { MetricsRegistry } from './metrics.js';
import { addPusher, isPusherInternal, pusherWebhookSet, type PusherWebhooks } from './pusher/index.js';
import { BusMetrics } from './node/bus-metrics.js';
import { NodeCore, type CoreMetrics, type NodeOptions } from './node/core.js';
import { NodeMetrics } from './node/metrics.js';
import { SocketMetrics } from './node/socket-metrics.js';
import type { Topics } from './node/topics.js';
import { REVOCATION_RELOAD_MS } from './node/revocations.js';
import type { OccupancyEvent, OccupancyStore, RevocationStore } from './stores/store.js';
import { UpgradeMetrics } from './transport/metrics.js';
import { WebhookMetrics } from './webhooks/metrics.js';
import { SSE_PATH } from './protocol/frames.js';
import { Webhooks } from './webhooks/webhooks.js';

export type { NodeOptions, NodeState } from './node/core.js';

/** A running Fanout node: its core with every feature registered. */
export type FanoutNode = NodeCore;

/** Builds a node from its parts; call `start()` to listen. */
export function createNode(options: NodeOptions): FanoutNode {
  const metrics = registerMetrics(options);
  const core = new NodeCore(options, metrics.core);
  const { config } = core;

  core.addEndpoint(new EchoEndpoint({ outbox: core.outbox, topics: core.topics, topic: core.topic('echo') }));
  // Crossings of Pusher channels the channel layer's occupancy sweep reports go to the Pusher webhooks.
  const pusherCrossings: PusherCrossings = {};
  const { service, revocations, occupancy } = addChannels(core, config, metrics, pusherCrossings);

  addHealthRoutes(core.router, core);
  addMetricsRoutes(core.router, metrics.registry, config.metricsToken);
  addDemoPageRoutes(core.router);
  addPageConfigRoute(core.router, { tokenRequired: config.jwt });
  addApiRoutes(core.router, { service, apiKey: config.apiKey, maxPayload: config.maxPayload, users: { calls: core.calls, revocations, service } });
  // WS /app/{key} and /apps/{id}/… (src/pusher, docs/pusher.md), over the same channel service.
  addPusher({
    config,
    service,
    outbox: core.outbox,
    logger: core.logger,
    router: core.router,
    calls: core.calls,
    addEndpoint: (e) => core.addEndpoint(e),
    closeClient: (c, code, reason) => core.closeClient(c, code, reason),
    webhooks: pusherWebhooks(core, config, occupancy, metrics.webhooks, pusherCrossings),
  });
  if (config.kafkaIngest) addKafkaIngest(core, config.kafkaIngest, service, metrics.ingest);
  return core;
}

/** Every family of a node, on its own registry, grouped by the part that reports to it. */
interface NodeMetricsSet {
  readonly registry: MetricsRegistry;
  readonly core: CoreMetrics;
  readonly history: HistoryMetrics;
  readonly webhooks: WebhookMetrics;
  readonly ingest: IngestMetrics;
}

/**
 * The node's registry with every family registered on it. All of them, whether or not their
 * feature is on (an unused one reads 0 or has no series), so every node exports the same families.
 */
function registerMetrics(options: NodeOptions): NodeMetricsSet {
  const metrics = new MetricsRegistry({ node: options.config.nodeId, processMetrics: options.processMetrics });
  const { registry } = metrics;
  const upgrades = new UpgradeMetrics(registry);
  const hooks = new HookMetrics(registry);
  return {
    registry: metrics,
    core: {
      node: new NodeMetrics(registry),
      sockets: new SocketMetrics(registry),
      bus: new BusMetrics(registry),
      upgradeRefused: (reason, status) => upgrades.rejected(reason, status),
      hookCalls: (hook, result, seconds) => hooks.request(hook, result, seconds),
    },
    history: new HistoryMetrics(registry, { historyTtlMs: storedHistoryTtl(options.config) * 1000 }),
    webhooks: new WebhookMetrics(registry),
    ingest: new IngestMetrics(registry),
  };
}

/** --kafka-ingest: this node's share of the topic's records (its group's), published as POST /api/publish does; readiness does not wait for it. */
function addKafkaIngest(core: NodeCore, target: KafkaIngestTarget, service: ChannelService, metrics: IngestMetrics): void {
  const ingest = new KafkaIngest({
    target,
    nodeId: core.id,
    maxPayload: core.config.maxPayload,
    publish: (channel, data, once) => service.publish(channel, data, once),
    logger: core.logger,
    observe: (result) => metrics.record(result),
  });
  // From listening on; a draining node hands its partitions to the others at once.
  core.onState((state) => (state === 'running' ? ingest.start() : state === 'draining' ? void ingest.close() : undefined));
  core.addStopHook(() => ingest.close());
}

/** `/ws/v1`: the stores, the route channel traffic takes, the service and the endpoint; the server API's calls on its connections. */
function addChannels(
  core: NodeCore,
  config: Config,
  metrics: NodeMetricsSet,
  pusherCrossings: PusherCrossings,
): { service: ChannelService; revocations: RevocationStore; occupancy: OccupancyStore | undefined } {
  const { history } = metrics;
  const { target, link } = channelRoute(core, config, history);
  let endpoint: ChannelEndpoint | undefined;
  const stores = createStores(target, {
    nodeId: core.id,
    prefix: config.busPrefix,
    historySize: storedHistorySize(config),
    historyTtl: storedHistoryTtl(config),
    historyTtlOf: historyTtlOf(config),
    historyMaxBytes: config.historyMaxBytes,
    historyDropped: (channel, reason) => history.dropped(channel, reason === 'evicted'),
    presenceTtl: config.presenceTtl,
    logger: core.logger,
    connected: () => link.connected,
    // Memory history over another bus: stored in this process, then handed to the bus; a refusal is counted and logged.
    deliver: (topic, payload) => void core.bus.publish(topic, payload).catch((err: unknown) => core.undelivered('bus_publish', err, { topic })),
    rejoin: () => endpoint?.rejoinPresence(),
  });
  const service = new ChannelService({ nodeId: core.id, config, channels: stores.channels, presence: stores.presence, link, history, publishes: metrics.core.bus, logger: core.logger });
  endpoint = new ChannelEndpoint({
    nodeId: core.id,
    service,
    outbox: core.outbox,
    logger: core.logger,
    maxSubscriptions: config.maxSubscriptions,
    maxBuffered: config.maxBuffered,
    heartbeat: config.heartbeat,
    hooks: channelHooks(core),
    occupancy: webhooks(core, config, stores.occupancy, metrics.webhooks, pusherCrossings),
    identity: { verify: (token) => core.gate.verify(token), renew: (client, identity) => core.gate.lifetime.renew(client, identity) },
  });
  core.addEndpoint(endpoint);
  core.addSseTransport(endpoint, SSE_PATH);
  core.addStopHook(() => stores.close());
  registerUserCalls(core.calls, {
    nodeId: core.id,
    clientsOf: (user) => core.clientsOf(user),
    clients: () => core.clients(),
    closeClient: (client, code, reason) => core.closeClient(client, code, reason),
    revocations: core.revocations,
    channels: endpoint.serverSide,
  });
  feedRevocations(core, stores.revocations);
  return { service, revocations: stores.revocations, occupancy: stores.occupancy };
}

/**
 * The node's copy of the revocations (node/revocations.ts): read from the store at start, when the
 * bus comes back (calls made meanwhile were missed) and every REVOCATION_RELOAD_MS; each revoke
 * call adds its entry on every node at once. The node is not ready until the first read, so
 * HAProxy sends it no upgrade it could not check.
 */
function feedRevocations(core: NodeCore, store: RevocationStore): void {
  let loaded = false;
  let failing = false;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const load = (): Promise<boolean> =>
    store.list().then(
      (entries) => {
        core.revocations.load(entries);
        loaded = true;
        failing = false;
        return true;
      },
      (err: unknown) => {
        // Said once per outage; the retries meanwhile at debug.
        if (!failing) core.logger.warn({ err: errorMessage(err) }, 'revocations not read from the store; retrying');
        else core.logger.debug({ err: errorMessage(err) }, 'revocations still not read from the store');
        failing = true;
        return false;
      },
    );
  const loop = (): void => {
    void load().then((ok) => {
      if (stopped) return;
      timer = setTimeout(loop, ok ? REVOCATION_RELOAD_MS : 1000);
      timer.unref();
    });
  };
  loop();
  core.topics.onStatus((status) => {
    if (status === 'connected' && loaded) void load();
  });
  core.addReadinessCheck(() => loaded);
  core.addStopHook(async () => {
    stopped = true;
    clearTimeout(timer);
  });
}

/**
 * --webhook: the sender, fed by the cluster-wide occupancy store. A store that cannot count
 * across the cluster would send each event once per node: the node refuses to start instead.
 */
function webhooks(core: NodeCore, config: Config, store: ChannelOccupancy['store'] | undefined, metrics: WebhookMetrics, pusherCrossings: PusherCrossings): ChannelOccupancy | undefined {
  if (config.webhook === undefined || config.webhookSecret === undefined) return undefined;
  if (!store) {
    const why =
      config.history.kind === 'nats' || config.history.kind === 'kafka'
        ? `history on ${config.history.kind === 'nats' ? 'NATS' : 'Kafka'} keeps no such counts yet`
        : `with --bus ${config.bus.kind}, memory history is per node`;
    throw new ConfigError('--webhook', `needs channel counts shared by the cluster: give --history redis://… (${why})`);
  }
  const sender = new Webhooks({
    url: config.webhook,
    secret: config.webhookSecret,
    nodeId: core.id,
    timeout: config.hookTimeout,
    retry: config.webhookRetry,
    logger: core.logger,
    observe: (name, result, count) => metrics.attempted(name, result, count),
  });
  metrics.queue(() => sender.depth + (pusherCrossings.depth?.() ?? 0));
  core.addStopHook(() => sender.close());
  pusherCrossings.sweptByChannels = true;
  // The sweep reports every channel's crossings here: a Pusher app's go to its own webhooks.
  return { store, emit: (event) => (isPusherInternal(event.channel) ? pusherCrossings.to?.([event]) : sender.emit(event)) };
}

/** Between the two webhook senders, which share the occupancy store and its one sweep. */
interface PusherCrossings {
  /** Where crossings of Pusher channels go (set when --pusher-webhook is on). */
  to?: (events: readonly OccupancyEvent[]) => void;
  /** The Pusher sender's queue depth, added to `fanout_webhook_queue_depth`. */
  depth?: () => number;
  /** True when --webhook started the store's sweep (it is started once). */
  sweptByChannels?: boolean;
}

/**
 * Each Pusher app's webhook (--pusher-webhook, or `webhook:` of a `pusher-apps:` entry): a sender
 * in Pusher's format to that app's URL, signed with its secret, fed by the same cluster-wide
 * occupancy store as --webhook (a store that cannot count across the cluster stops the node, as
 * for --webhook). The store's one sweep reports every channel; each app takes its own (the
 * internal channel names its app).
 */
function pusherWebhooks(core: NodeCore, config: Config, store: OccupancyStore | undefined, metrics: WebhookMetrics, crossings: PusherCrossings): ReadonlyMap<string, PusherWebhooks> | undefined {
  const index = config.pusherApps.findIndex((app) => app.webhook !== undefined);
  if (index < 0) return undefined;
  // The flags' app comes first in the list (config/pusher-apps.ts); a file's app is named by its place in pusher-apps.
  const flagged = config.pusherAppId !== undefined;
  if (!store) throw new ConfigError(index === 0 && flagged ? '--pusher-webhook' : `pusher-apps[${flagged ? index - 1 : index}].webhook`, 'needs channel counts shared by the cluster: give --history redis:// (or a Redis bus)');
  const set = pusherWebhookSet(config.pusherApps, {
    store,
    nodeId: core.id,
    timeout: config.hookTimeout,
    retry: config.webhookRetry,
    logger: core.logger,
    observe: (name, result, count) => metrics.attempted(name, result, count),
  });
  crossings.to = set.crossed;
  crossings.depth = set.depth;
  if (!crossings.sweptByChannels) {
    metrics.queue(set.depth);
    store.start(set.crossed);
  }
  core.addStopHook(() => set.close());
  return set.byApp;
}

/** --subscribe-hook and --publish-hook as the channel endpoint calls them. */
function channelHooks(core: NodeCore): ChannelHooks | undefined {
  const hooks = core.hooks;
  if (!hooks) return undefined;
  // The channel's namespace says which URL (or none) each call goes to.
  return {
    subscribe: (caller, channel, url, on) => hooks.subscribe(caller, channel, on, url),
    publish: (caller, channel, data, url, on) => hooks.publish(caller, channel, data, on, url),
  } satisfies ChannelHooks;
}

/**
 * Where history lives and which route channel topics take. Offsets, history and delivery order
 * agree only when messages are put on the bus by the store itself, so channel topics ride on the
 * store's pub/sub: the node's bus when it is the store (memory, or Redis with history in it), a
 * topic router of their own over the history Redis otherwise.
 */
function channelRoute(core: NodeCore, config: Config, historyMetrics: HistoryMetrics): { target: StoreTarget; link: Topics } {
  const history = config.history;
  if (history.kind === 'memory') {
    // Shared by the nodes of one memory broker; with another bus, history is this process's own.
    const owner = core.bus instanceof MemoryBus ? core.bus.broker : core;
    if (!(core.bus instanceof MemoryBus)) {
      // Asked for with --history memory (a shared bus has no memory default).
      core.logger.info({ bus: core.bus.kind }, 'channel history and presence are per node (--history memory)');
    }
    return { target: { kind: 'memory', owner }, link: core.topics };
  }
  if (history.kind === 'nats') return jetStreamRoute(core, config, history.address, history.sameAsBus ? '--bus' : '--history');
  if (history.kind === 'kafka') return kafkaRoute(core, config, history.address, historyMetrics);
  const target = { kind: 'redis', url: history.url } as const;
  if (history.sameAsBus) return { target, link: core.topics };
  const link = core.createTopics(new RedisBus(history.url, '--history'), 'history redis');
  link.connect();
  // Channel traffic rides that Redis: it must be up too.
  core.addReadinessCheck(() => link.connected);
  core.addStopHook(() => link.close());
  return { target, link };
}

/**
 * `--history nats://…`: the stream is the history and its consumer the route (brokers/nats/jetstream.ts),
 * on a connection of its own even when the bus is the same NATS; presence lives in a KV bucket there.
 */
function jetStreamRoute(core: NodeCore, config: Config, address: NatsAddress, flag: '--bus' | '--history'): { target: StoreTarget; link: Topics } {
  const log = new JetStreamLog({
    address,
    flag,
    prefix: config.busPrefix,
    nodeId: core.id,
    historySize: storedHistorySize(config),
    historyTtl: storedHistoryTtl(config),
    historyMaxBytes: config.historyMaxBytes,
    idempotencyWindow: longestIdempotencyWindow(config),
    channelOf: (topic) => channelOfTopic(config.busPrefix, topic),
    undelivered: (err, channel) => core.undelivered('message_head', err, { channel, history: 'jetstream' }),
    logger: core.logger,
  });
  const link = core.createTopics(log, 'history jetstream');
  link.connect();
  core.addReadinessCheck(() => link.connected);
  core.addStopHook(() => link.close());
  return { target: { kind: 'jetstream', log, address }, link };
}

/**
 * `--history kafka://…`: the channels topic is the history and its consumer the route
 * (brokers/kafka/log.ts), with clients of their own beside the bus's.
 */
function kafkaRoute(core: NodeCore, config: Config, address: KafkaAddress, historyMetrics: HistoryMetrics): { target: StoreTarget; link: Topics } {
  const namespaces = new Namespaces(config);
  const log = new KafkaLog({
    address,
    nodeId: core.id,
    historySize: storedHistorySize(config),
    historyTtl: storedHistoryTtl(config),
    historyMaxBytes: config.historyMaxBytes,
    historyEvicted: (channel) => historyMetrics.dropped(channel, true),
    // The index holds what the node read of the log, every node's writes: it says what a channel keeps as it reads (the store's publish cannot, the read coming after the ack).
    historySized: (channel, n) => historyMetrics.channelSize(channel, Math.min(n, namespaces.resolve(channel).historySize)),
    channelOf: (topic) => channelOfTopic(config.busPrefix, topic),
    topicOf: (channel) => channelTopic(config.busPrefix, channel),
    undelivered: (err, channel) => core.undelivered('message_head', err, { channel, history: 'kafka' }),
    logger: core.logger,
  });
  const link = core.createTopics(log, 'history kafka');
  link.connect();
  core.addReadinessCheck(() => link.connected);
  core.addStopHook(() => link.close());
  return { target: { kind: 'kafka', log, address }, link };
}
