/**
 * Fanout as a library (the package's `.` export): build a node from code, start it, stop it.
 * The SDK for clients is the `fanout/client` export.
 *
 * ```ts
 * import { createConfig, createNode } from 'fanout';
 *
 * const node = createNode({ config: createConfig({ port: 3000, bus: 'redis://127.0.0.1:6379', presence: 'chat:*' }) });
 * await node.start();
 * console.log(`listening on ${node.address.port}, ready: ${node.ready}`);
 * process.on('SIGTERM', () => void node.drain()); // readiness 503, clients closed with 1001, then closed
 * ```
 *
 * `createConfig` takes the same options as `fanout serve` (camelCase; numbers as numbers or
 * strings, lists as arrays or comma-separated strings) and checks at run time what its type
 * says: an unknown key or a bad value of any type throws a `ConfigError` naming the key; nothing
 * throws later.
 */
export { createNode, type FanoutNode, type NodeOptions, type NodeState } from './app.js';
export { createConfig, loadServeConfig, type ConfigInput } from './config/load.js';
export { DEFAULTS, TIMINGS, type Config } from './config/schema.js';
export { MemoryBroker } from './brokers/memory/bus.js';
export { createBus } from './brokers/create-bus.js';
export type { Bus, BusStatus } from './stores/bus.js';
export {
  BusUnavailableError,
  CLOSE_CODES,
  CloseCode,
  ConfigError,
  ERROR_CODES,
  FANOUT_ERRORS,
  FanoutError,
  shouldReconnect,
  UPGRADE_STATUSES,
  UpgradeStatus,
} from './errors.js';
export { createLogger, type Logger } from './logger.js';
export { haproxyConfig, type HaproxyOptions } from './haproxy/config.js';
