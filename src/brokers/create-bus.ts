/** Picks the bus adapter a parsed `--bus` address names. */
import type { BusAddress } from '../config/bus-address.js';
import type { Bus } from '../stores/bus.js';
import { MemoryBus, type MemoryBroker } from './memory/bus.js';
import { AmqpBus } from './amqp/bus.js';
import { KafkaBus } from './kafka/bus.js';
import { NatsBus } from './nats/bus.js';
import { RedisClusterBus } from './redis/cluster-bus.js';
import { RedisBus } from './redis/bus.js';

/**
 * Builds the adapter for `address` (parsed at load, so this never fails on a bad URL); `broker`
 * lets tests put several memory-bus nodes on one broker.
 */
export function createBus(address: BusAddress, opts: { broker?: MemoryBroker } = {}): Bus {
  switch (address.kind) {
    case 'memory':
      return new MemoryBus(opts.broker);
    case 'redis':
      return new RedisBus(address.url);
    case 'redis-cluster':
      return new RedisClusterBus(address);
    case 'nats':
      return new NatsBus(address);
    case 'amqp':
      return new AmqpBus(address.url);
    case 'kafka':
      return new KafkaBus(address);
  }
}
