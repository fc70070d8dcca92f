/**
 * `@platformatic/kafka`, imported when a Kafka client is first made. Importing it compiles its
 * option schemas: about 0.6 s of CPU, more than the rest of the CLI's start-up, which every
 * `fanout` process would otherwise pay, Kafka or not. The adapters import its types statically
 * (erased at build) and its values through {@link loadKafkaClient}.
 */
import type * as Client from '@platformatic/kafka';

export type KafkaClientModule = typeof Client;

let loading: Promise<KafkaClientModule> | undefined;
let loaded: KafkaClientModule | undefined;

/** The client module; the first call imports it, later calls get the same promise. */
export function loadKafkaClient(): Promise<KafkaClientModule> {
  loading ??= import('@platformatic/kafka').then((module) => (loaded = module));
  return loading;
}

/**
 * The client module once {@link loadKafkaClient} has resolved, else undefined: before that no
 * client, record or error of it can exist.
 */
export function loadedKafkaClient(): KafkaClientModule | undefined {
  return loaded;
}
