/**
 * The `nats` client module, imported when a connection to NATS is first opened
 * ({@link connectNats} in bus.ts), as brokers/kafka/client.ts does for Kafka (stores/lazy-module.ts).
 * The adapters import its types statically and its values through {@link nats}, which only code
 * that runs on an open connection calls.
 */
import type * as Client from 'nats';
import { LazyModule } from '../../stores/lazy-module.js';

const client = new LazyModule<typeof Client>(() => import('nats'));

/** The client module; the first call imports it, later calls get the same promise. */
export function loadNats(): Promise<typeof Client> {
  return client.load();
}

/** The client module, for code that runs on a connection (so after {@link loadNats} resolved). */
export function nats(): typeof Client {
  const module = client.loaded;
  if (!module) throw new Error('the nats client is used before a connection opened it (loadNats)');
  return module;
}
