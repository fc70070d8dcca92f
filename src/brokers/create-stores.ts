/** Builds the history and presence stores a `--history` target names: memory, Redis or JetStream. */
import { Redis } from 'ioredis';
import { MemoryBroker } from './memory/bus.js';
import type { NatsAddress } from '../config/bus-address.js';
import { redisOptions } from './redis/bus.js';
import { errorMessage } from '../errors.js';
import type { Logger } from '../logger.js';
import type { JetStreamLog } from './nats/jetstream.js';
import { JetStreamChannelStore } from './nats/jetstream-store.js';
import { presenceTopic, type KafkaLog } from './kafka/log.js';
import { KafkaChannelStore } from './kafka/channel-store.js';
import { KafkaPresenceStore } from './kafka/presence.js';
import type { KafkaAddress } from '../config/bus-address.js';
import { MemoryChannelStore, MemoryOccupancyStore, MemoryPresenceStore, type DropReason } from './memory/stores.js';
import { NatsPresenceStore } from './nats/presence.js';
import { RedisChannelStore, RedisOccupancyStore, RedisPresenceStore } from './redis/stores.js';
import { withScripts } from './redis/scripts.js';
import type { ChannelStore, OccupancyStore, PresenceStore, RevocationStore } from '../stores/store.js';
import { MemoryRevocationStore } from './memory/revocations.js';
import { RedisRevocationStore } from './redis/revocations.js';

/**
 * Where history lives: in this process (shared by the nodes of one memory broker), in a Redis, or
 * in a JetStream stream (the node's {@link JetStreamLog}, which is also the route channel topics
 * take) with presence in a KV bucket on the same NATS (`address`).
 */
export type StoreTarget =
  | { readonly kind: 'memory'; readonly owner: MemoryBroker | object }
  | { readonly kind: 'redis'; readonly url: string }
  | { readonly kind: 'jetstream'; readonly log: JetStreamLog; readonly address: NatsAddress }
  | { readonly kind: 'kafka'; readonly log: KafkaLog; readonly address: KafkaAddress };

export interface Stores {
  readonly channels: ChannelStore;
  readonly presence: PresenceStore;
  /**
   * Cluster-wide occupancy for --webhook; undefined when this store cannot count across the
   * cluster (memory history beside a bus that is not the memory bus: every node has its own).
   */
  readonly occupancy: OccupancyStore | undefined;
  /** Revoked tokens, cluster-wide (docs/auth.md, "Revocation"). */
  readonly revocations: RevocationStore;
  /** Where history lives, for logs: memory or the Redis URL without credentials. */
  readonly where: string;
  close(): Promise<void>;
}

export interface StoreOptions {
  readonly nodeId: string;
  /** --bus-prefix: prefix of every key. */
  readonly prefix: string;
  readonly historySize: number;
  /** The ttl the store keeps (the longest, config/namespaces.ts storedHistoryTtl). */
  readonly historyTtl: number;
  /** Each channel's own ttl (its namespace's `history-ttl`), when namespaces set one: the store expires or serves each channel at it. */
  readonly historyTtlOf?: (channel: string) => number;
  /** --history-max-bytes (the memory store). */
  readonly historyMaxBytes: number;
  /** The memory store dropped a channel's log (expired, or evicted for --history-max-bytes). */
  readonly historyDropped?: (channel: string, reason: DropReason) => void;
  readonly presenceTtl: number;
  readonly logger: Logger;
  /**
   * The route the memory store hands its payloads to (a Redis store PUBLISHes from its script):
   * `deliver` puts a finished envelope on the channel's topic, synchronously up to the hand-off,
   * and `connected` says whether it can.
   */
  readonly deliver: (topic: string, payload: Buffer) => void;
  readonly connected: () => boolean;
  /** Called when Redis declared this node dead (it was cut off) and its present clients must join again. */
  readonly rejoin: () => void;
}

export function createStores(target: StoreTarget, options: StoreOptions): Stores {
  if (target.kind === 'memory') {
    const channels = new MemoryChannelStore(target.owner, {
      historySize: options.historySize,
      historyTtl: options.historyTtl,
      historyTtlOf: options.historyTtlOf,
      historyMaxBytes: options.historyMaxBytes,
      connected: options.connected,
      deliver: options.deliver,
      dropped: options.historyDropped,
    });
    const occupancy = target.owner instanceof MemoryBroker ? new MemoryOccupancyStore(target.owner, options.nodeId) : undefined;
    return { channels, presence: new MemoryPresenceStore(target.owner, options.nodeId), occupancy, revocations: new MemoryRevocationStore(target.owner), where: 'memory', close: async () => {} };
  }
  if (target.kind === 'jetstream') {
    // History in the node's JetStream stream, presence in a JetStream KV bucket on the same NATS.
    const channels = new JetStreamChannelStore(target.log, options.nodeId, options.historyTtlOf);
    const presence = new NatsPresenceStore({ address: target.address, ...presenceOptions(options) });
    // No cluster-wide occupancy counts on NATS yet: --webhook refuses to start with this store.
    return { channels, presence, occupancy: undefined, revocations: presence.revocations, where: `jetstream stream ${target.log.layout.stream}`, close: () => presence.close() };
  }
  if (target.kind === 'kafka') {
    const channels = new KafkaChannelStore(target.log, options.nodeId, options.historyTtlOf);
    // Presence in a compacted topic beside the bus topic, read whole by every node.
    const presence = new KafkaPresenceStore({
      brokers: target.address.brokers,
      topic: presenceTopic(target.address.topic),
      ...presenceOptions(options),
    });
    // No cluster-wide occupancy counts on Kafka yet: --webhook refuses to start with this store.
    return { channels, presence, occupancy: undefined, revocations: presence.revocations, where: `kafka topic ${target.log.topic}`, close: () => presence.close() };
  }

  // Unlike the bus, reads wait for a (re)connection, up to one retry: a request that comes in
  // while the node is still connecting is answered late rather than refused. Publishes fail fast
  // (the store checks the connection), and a command in flight when the connection drops is
  // failed, not sent again: a publish answered `unavailable` must not be stored later.
  const redis = withScripts(new Redis(target.url, redisOptions({ connectionName: 'fanout-history', enableOfflineQueue: true, autoResendUnfulfilledCommands: false })));
  redis.on('error', () => {
    // Surfaces as `unavailable` answers; the bus logs the broker's state.
  });
  redis.connect().catch((err: unknown) => options.logger.warn({ err: errorMessage(err) }, 'history redis not reachable yet; retrying'));
  const channels = new RedisChannelStore(redis, {
    prefix: options.prefix,
    historySize: options.historySize,
    historyTtl: options.historyTtl,
    historyTtlOf: options.historyTtlOf,
  });
  const presence = new RedisPresenceStore(redis, {
    prefix: options.prefix,
    node: options.nodeId,
    ttl: options.presenceTtl,
    rejoin: options.rejoin,
    logError: (err, what) => options.logger.debug({ err: err.message }, what),
  });
  return {
    channels,
    presence,
    occupancy: new RedisOccupancyStore(redis, presence, { prefix: options.prefix, node: options.nodeId }),
    revocations: new RedisRevocationStore(redis, options.prefix),
    where: target.url.replace(/\/\/[^@/]*@/, '//'),
    close: async () => {
      await redis.quit().catch(() => {});
      redis.disconnect();
    },
  };
}

/** What every shared presence store takes from the node: its names, --presence-ttl, and where it reports. */
function presenceOptions(options: StoreOptions) {
  return {
    prefix: options.prefix,
    node: options.nodeId,
    ttl: options.presenceTtl,
    rejoin: options.rejoin,
    logError: (err: Error, what: string) => options.logger.debug({ err: err.message }, what),
    warn: (line: string) => options.logger.warn(line),
  };
}
