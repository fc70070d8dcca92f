/** Picks the bus adapter a `--bus` URL names. */
import { ConfigError } from '../errors.js';
import type { Bus } from './bus.js';
import { MemoryBus, type MemoryBroker } from './memory.js';
import { AmqpBus } from './amqp.js';
import { NatsBus } from './nats.js';
import { RedisClusterBus } from './redis-cluster.js';
import { RedisBus } from './redis.js';

/** Builds the adapter for `url`; `broker` lets tests put several memory-bus nodes on one broker. */
export function createBus(url: string, opts: { broker?: MemoryBroker } = {}): Bus {
  if (url === 'memory') return new MemoryBus(opts.broker);
  const scheme = url.slice(0, url.indexOf(':'));
  switch (scheme) {
    case 'redis':
    case 'rediss':
      return new RedisBus(url);
    case 'redis-cluster':
      return new RedisClusterBus(url);
    case 'nats':
      return new NatsBus(url);
    case 'amqp':
    case 'amqps':
      return new AmqpBus(url);
    default:
      throw new ConfigError('--bus', `the ${scheme}:// bus is not available in this build`);
  }
}
