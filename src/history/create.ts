/** Picks the history and presence stores for a node: Redis when the bus or --history is Redis, memory otherwise. */
import { Redis } from 'ioredis';
import { MemoryBus } from '../bus/memory.js';
import { redisOptions } from '../bus/redis.js';
import type { FanoutNode } from '../node/node.js';
import { MemoryChannelStore, MemoryPresenceStore } from './memory.js';
import { RedisChannelStore, RedisPresenceStore, withScripts } from './redis.js';
import type { ChannelStore, PresenceStore } from './store.js';
import { NodeTransport, RedisTransport, type ChannelTransport } from '../channels/transport.js';

export interface Stores {
  readonly channels: ChannelStore;
  readonly presence: PresenceStore;
  /** Where channel payloads travel: the store's own pub/sub (see channels/transport.ts). */
  readonly transport: ChannelTransport;
  /** Where history lives, for logs: memory or the Redis URL without credentials. */
  readonly where: string;
  close(): Promise<void>;
}

/** The stores of `node`; `rejoin` re-registers the node's presence after Redis declared it dead. */
export function createStores(node: FanoutNode, rejoin: () => void): Stores {
  const { config } = node;
  const target = config.history;
  if (target.kind === 'memory') {
    // Shared by the nodes of one memory broker; with another bus, history is this process's own.
    const owner = node.bus instanceof MemoryBus ? node.bus.broker : node;
    if (!(node.bus instanceof MemoryBus)) {
      node.logger.warn({ bus: node.bus.kind }, 'channel history and presence are per node (memory); give --history redis://… for a cluster');
    }
    const transport = new NodeTransport(node);
    const channels = new MemoryChannelStore(owner, {
      historySize: config.historySize,
      historyTtl: config.historyTtl,
      connected: () => transport.connected,
      deliver: (topic, payload) => void transport.publish(topic, payload).catch(() => {}),
    });
    return { channels, presence: new MemoryPresenceStore(owner, node.id), transport, where: 'memory', close: async () => {} };
  }
  const { url } = target;

  // Unlike the bus, commands wait for a (re)connection, up to one retry: a request that comes in
  // while the node is still connecting is answered late rather than refused. Publishes still fail
  // fast: the service checks the bus first.
  const redis = withScripts(new Redis(url, redisOptions({ connectionName: 'fanout-history', enableOfflineQueue: true })));
  redis.on('error', () => {
    // Surfaces as `unavailable` answers; the bus logs the broker's state.
  });
  redis.connect().catch((err: Error) => node.logger.warn({ err: err.message }, 'history redis not reachable yet; retrying'));
  // The publish script does the PUBLISH itself (atomic, ordered); nodes listen on that Redis:
  // through the bus when it is this Redis, through a pub/sub connection of their own otherwise.
  const transport = target.sameAsBus ? new NodeTransport(node) : new RedisTransport(url, node);
  const channels = new RedisChannelStore(redis, {
    prefix: config.busPrefix,
    historySize: config.historySize,
    historyTtl: config.historyTtl,
  });
  const presence = new RedisPresenceStore(redis, {
    prefix: config.busPrefix,
    node: node.id,
    ttl: config.presenceTtl,
    rejoin,
    logError: (err, what) => node.logger.debug({ err: err.message }, what),
  });
  return {
    channels,
    presence,
    transport,
    where: target.describe,
    close: async () => {
      await transport.close();
      await redis.quit().catch(() => {});
      redis.disconnect();
    },
  };
}
