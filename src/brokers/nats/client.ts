/**
 * The `nats` client module, imported when a connection to NATS is first opened
 * ({@link connectNats} in bus.ts), as brokers/kafka/client.ts does for Kafka: a node on another
 * broker, and every CLI command, need not load its modules. The adapters import its types
 * statically (erased at build) and its values through {@link nats}, which only code that runs on
 * an open connection calls.
 */
import type * as Client from 'nats';

export type NatsClientModule = typeof Client;

let loading: Promise<NatsClientModule> | undefined;
let loaded: NatsClientModule | undefined;

/** The client module; the first call imports it, later calls get the same promise. */
export function loadNats(): Promise<NatsClientModule> {
  loading ??= import('nats').then((module) => (loaded = module));
  return loading;
}

/** The client module, for code that runs on a connection (so after {@link loadNats} resolved). */
export function nats(): NatsClientModule {
  if (!loaded) throw new Error('the nats client is used before a connection opened it (loadNats)');
  return loaded;
}
