/**
 * Stores playing the nodes of a cluster, built the way the composition root builds them
 * (src/app.ts: the route channel topics take, then createStores), from a description that can
 * cross a process boundary ({@link StoreSpec}), so a node can also run in a process of its own
 * and be SIGKILLed (helpers/store-node-process.ts). The store conformance suite drives them.
 */
import { Redis } from 'ioredis';
import type { Bus } from '../../src/stores/bus.js';
import { createBus } from '../../src/brokers/create-bus.js';
import { MemoryBroker, MemoryBus } from '../../src/brokers/memory/bus.js';
import { channelOfTopic, channelTopic, FENCE } from '../../src/channels/service.js';
import { parseBusAddress, parseKafkaUrl, parseNatsUrl } from '../../src/config/bus-address.js';
import { DEFAULTS } from '../../src/config/defaults.js';
import { createStores, type StoreTarget, type Stores } from '../../src/brokers/create-stores.js';
import { JetStreamLog } from '../../src/brokers/nats/jetstream.js';
import { KafkaLog } from '../../src/brokers/kafka/log.js';
import type { OccupancyEvent, OutgoingMessage, PublishResult, ReadOptions, ReadResult } from '../../src/stores/store.js';
import { silentLogger } from '../../src/logger.js';
import { decodeEnvelope, encodeEnvelope, EnvelopeKind } from '../../src/protocol/envelope.js';
import { Changes, until } from '../../harness/wait.js';

/** Where a node's stores live: the `--history` target, as a URL (memory: the in-process broker named `broker`). */
export type StoreWhere =
  | { readonly kind: 'memory'; readonly broker: string }
  | { readonly kind: 'redis'; readonly url: string }
  | { readonly kind: 'jetstream'; readonly url: string }
  | { readonly kind: 'kafka'; readonly url: string };

/** A node's stores: where, under which --bus-prefix, with which limits. */
export type StoreSpec = StoreWhere & { readonly prefix: string; readonly historySize: number; readonly historyTtl: number; readonly presenceTtl: number; readonly idempotencyWindow?: number };

/** A message as a node's route delivered it. */
export interface Delivered {
  readonly offset: number;
  readonly epoch: string;
  readonly data: string;
}

/** In-process memory brokers by name (a memory "cluster" lives in one process). */
const brokers = new Map<string, MemoryBroker>();

/** One node's stores and route. */
export class StoreNode {
  /** Channel messages this node's route delivered, per channel, in arrival order. */
  private readonly deliveries = new Map<string, Delivered[]>();
  /** Presence entries a sweep of this node reported departed (`channel/client`). */
  readonly departed: string[] = [];
  /** Occupancy crossings a sweep of this node reported. */
  readonly swept: OccupancyEvent[] = [];
  /** How often the store told this node to join its clients again. */
  rejoins = 0;
  /** The route's status changes since the node opened, for a timeout's message. */
  readonly statuses: string[] = [];
  private readonly changes = new Changes();

  private constructor(
    readonly id: string,
    readonly spec: StoreSpec,
    readonly stores: Stores,
    /** The route channel payloads reach this node by (the node's topic router reads it). */
    readonly route: Bus,
  ) {}

  /** Builds node `id`'s stores for `spec` and connects its route (resolves once it can publish). */
  /**
   * Opens a node: its stores built as the node builds them, its route connected, presence and
   * occupancy started. `early` runs right after the stores are started and before the route has
   * connected, as a client may come to a node whose broker is not reached yet.
   */
  static async open(id: string, spec: StoreSpec, early?: (stores: Stores) => void): Promise<StoreNode> {
    let node: StoreNode | undefined;
    const logger = silentLogger();
    let route: Bus;
    let target: StoreTarget;
    if (spec.kind === 'memory') {
      let broker = brokers.get(spec.broker);
      if (!broker) brokers.set(spec.broker, (broker = new MemoryBroker()));
      route = new MemoryBus(broker);
      target = { kind: 'memory', owner: broker };
    } else if (spec.kind === 'redis') {
      route = createBus(parseBusAddress(spec.url));
      target = { kind: 'redis', url: spec.url };
    } else if (spec.kind === 'jetstream') {
      const address = parseNatsUrl(spec.url, '--history');
      const log = new JetStreamLog({ address, prefix: spec.prefix, nodeId: id, historySize: spec.historySize, historyTtl: spec.historyTtl, idempotencyWindow: spec.idempotencyWindow ?? 300, channelOf: (t) => channelOfTopic(spec.prefix, t), logger });
      route = log;
      target = { kind: 'jetstream', log, address };
    } else {
      const address = parseKafkaUrl(spec.url, '--history');
      const log = new KafkaLog({
        address, nodeId: id, historySize: spec.historySize, historyTtl: spec.historyTtl, logger,
        channelOf: (t) => channelOfTopic(spec.prefix, t),
        topicOf: (c) => channelTopic(spec.prefix, c),
      });
      route = log;
      target = { kind: 'kafka', log, address };
    }
    const stores = createStores(target, {
      nodeId: id,
      prefix: spec.prefix,
      historySize: spec.historySize,
      historyTtl: spec.historyTtl,
      historyMaxBytes: DEFAULTS.historyMaxBytes,
      presenceTtl: spec.presenceTtl,
      logger,
      connected: () => route.connected,
      deliver: (topic, payload) => void route.publish(topic, payload).catch(() => {}),
      rejoin: () => {
        node!.rejoins++;
        node!.changes.notify();
      },
    });
    node = new StoreNode(id, spec, stores, route);
    route.onMessage((topic, payload) => node!.received(topic, payload));
    route.onStatus((status) => {
      node!.statuses.push(status);
      // As the node's topic router does: after a reconnect, subscribe every topic again.
      if (status === 'connected') for (const channel of node!.deliveries.keys()) void route.subscribe(channelTopic(spec.prefix, channel)).catch(() => {});
      node!.changes.notify();
    });
    const connected = route.connect();
    stores.presence.start((channel, entry) => {
      node!.departed.push(`${channel}/${entry.client}`);
      node!.changes.notify();
    });
    early?.(stores);
    await connected;
    stores.occupancy?.start((events) => {
      node!.swept.push(...events);
      node!.changes.notify();
    });
    return node;
  }

  /** Starts taking `channel`'s messages from the route. */
  async listen(channel: string): Promise<void> {
    if (!this.deliveries.has(channel)) this.deliveries.set(channel, []);
    await this.route.subscribe(channelTopic(this.spec.prefix, channel));
  }

  /** What the route delivered of `channel` so far. */
  delivered(channel: string): Delivered[] {
    return this.deliveries.get(channel) ?? [];
  }

  /** Publishes `data` (JSON text) on `channel` through the store, as the channel service does. */
  publish(channel: string, data: string, once?: OutgoingMessage['once']): Promise<PublishResult> {
    const topic = channelTopic(this.spec.prefix, channel);
    return this.stores.channels.publish({ channel, topic, origin: this.id, data, ...(once ? { once } : {}) });
  }

  /** Publishes with an idempotency key remembered `window` seconds (the spec's idempotency window, else 300), as the channel service does. */
  publishKeyed(channel: string, data: string, key: string, window = this.spec.idempotencyWindow ?? 300): Promise<PublishResult> {
    const topic = channelTopic(this.spec.prefix, channel);
    return this.stores.channels.publish({ channel, topic, origin: this.id, data, idempotency: { key, window } });
  }

  read(channel: string, options?: ReadOptions): Promise<ReadResult> {
    return this.stores.channels.read(channel, options);
  }

  /** A read with a fence, as a joining subscription makes it: resolves once the fence came back on this node's route too. */
  async join(channel: string, since?: ReadOptions['since']): Promise<ReadResult> {
    await this.listen(channel);
    const token = `fence-${Math.random().toString(36).slice(2)}`;
    const topic = channelTopic(this.spec.prefix, channel);
    const payload = encodeEnvelope(EnvelopeKind.CONTROL, this.id, Buffer.from(`${FENCE}${token}`));
    const result = await this.read(channel, { ...(since ? { since } : {}), fence: { topic, payload } });
    await this.until(() => this.fences.has(token), `fence ${token} on ${channel}`);
    return result;
  }

  private readonly fences = new Set<string>();

  /** Waits until `predicate` holds, re-checked on every delivery, status and sweep (and every 100 ms: it may read other state). */
  until(predicate: () => boolean | Promise<boolean>, what: string, timeoutMs = 15_000): Promise<void> {
    const detail = (): string => {
      const got = [...this.deliveries].map(([ch, ds]) => `${ch}: ${ds.length} [${ds.map((d) => d.offset).join(',')}]`).join('; ');
      return `delivered ${got || 'nothing'}; route statuses: ${this.statuses.join(' → ') || 'none'}; rejoins ${this.rejoins}`;
    };
    return until(predicate, { wake: this.changes, intervalMs: 100, timeoutMs, what: `${what} on ${this.spec.kind} node ${this.id}`, detail });
  }

  /**
   * How much per-name state the store holds under this node's prefix: Redis keys, memory logs and
   * presence channels, Kafka index entries, JetStream stored messages. For "a read creates nothing".
   */
  async footprint(): Promise<number> {
    const { spec, stores, route } = this;
    if (spec.kind === 'redis') {
      const redis = new Redis(spec.url, { lazyConnect: true });
      try {
        await redis.connect();
        return (await redis.keys(`${spec.prefix}:*`)).length;
      } finally {
        redis.disconnect();
      }
    }
    if (spec.kind === 'kafka') return (route as KafkaLog).index.size;
    if (spec.kind === 'jetstream') return (await (route as JetStreamLog).connection().jsm.streams.info((route as JetStreamLog).layout.stream)).state.messages;
    // The memory store's state is private to it; its maps are what grows per name.
    const inside = (store: object, field: string): number => (Reflect.get(store, field) as Map<string, unknown>).size;
    return inside(stores.channels, 'logs') + inside(stores.presence, 'channels');
  }

  /** Closes the stores (this node's presence entries and counts go) and the route. */
  async close(): Promise<void> {
    // In the order the channel service and the node close them.
    await this.stores.presence.close().catch(() => {});
    await this.stores.channels.close();
    await this.stores.close();
    await this.route.close();
  }

  private received(topic: string, payload: Buffer): void {
    const channel = channelOfTopic(this.spec.prefix, topic);
    const envelope = decodeEnvelope(payload);
    if (channel === undefined || !envelope) return;
    const text = envelope.body.toString('utf8');
    if (envelope.kind === EnvelopeKind.CONTROL && text.startsWith(FENCE)) this.fences.add(text.slice(FENCE.length));
    else if (envelope.kind === EnvelopeKind.CHANNEL) {
      const frame = JSON.parse(text) as { offset: number; epoch: string; data: unknown };
      let list = this.deliveries.get(channel);
      if (!list) this.deliveries.set(channel, (list = []));
      list.push({ offset: frame.offset, epoch: frame.epoch, data: JSON.stringify(frame.data) });
    }
    this.changes.notify();
  }
}
