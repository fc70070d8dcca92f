/**
 * `@platformatic/kafka`, imported when a Kafka client is first made. Importing it compiles its
 * option schemas: about 0.6 s of CPU, more than the rest of the CLI's start-up, which every
 * `fanout` process would otherwise pay, Kafka or not. The adapters import its types statically
 * (erased at build) and its values through {@link loadKafkaClient}. Beside it, what every user
 * of its clients needs: {@link forceClose} and {@link isLinkFailure}.
 */
import type * as Client from '@platformatic/kafka';
import type { Admin, Consumer, Producer } from '@platformatic/kafka';
import { LazyModule } from '../../stores/lazy-module.js';

export type KafkaClientModule = typeof Client;

const client = new LazyModule<KafkaClientModule>(() => import('@platformatic/kafka'));

/** The client module; the first call imports it, later calls get the same promise. */
export function loadKafkaClient(): Promise<KafkaClientModule> {
  return client.load();
}

/**
 * The client module once {@link loadKafkaClient} has resolved, else undefined: before that no
 * client, record or error of it can exist.
 */
export function loadedKafkaClient(): KafkaClientModule | undefined {
  return client.loaded;
}

/** A client of the module that {@link forceClose} closes. */
export type Closable = Producer | Consumer | Admin;

/** True for a lost or silent connection, also when the client wraps it (retries, causes). */
export function isLinkFailure(err: unknown, depth = 0): boolean {
  const client = loadedKafkaClient(); // not loaded yet: the error is none of its
  if (client && (err instanceof client.NetworkError || err instanceof client.TimeoutError)) return true;
  if (depth > 4 || typeof err !== 'object' || err === null) return false;
  const { errors, cause } = err as { errors?: unknown; cause?: unknown };
  return (Array.isArray(errors) && errors.some((e) => isLinkFailure(e, depth + 1))) || (cause !== undefined && isLinkFailure(cause, depth + 1));
}

/**
 * A client error as one line that says where and why, as Redis's do: the client's own words,
 * then the distinct causes it wraps (`metadata failed 3 times: connect ECONNREFUSED
 * 127.0.0.1:9092`). The client nests them (retries in `errors`, each a "Cannot connect to any
 * broker" with one NetworkError per broker, its socket error in `cause`), and its top message
 * names neither the address nor the cause. A cause that does not name the address
 * (`getaddrinfo ENOTFOUND host`) gets it from the NetworkError around it.
 */
export function kafkaErrorMessage(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const causes = new Set<string>();
  const walk = (e: unknown, address: string | undefined, depth: number): void => {
    if (!(e instanceof Error) || depth > 6) return;
    const nested = [...((e as { errors?: unknown }).errors as unknown[] | undefined ?? []), ...(e.cause === undefined ? [] : [e.cause])];
    const here = /Connection to (\S+?) failed/.exec(e.message)?.[1] ?? address;
    if (nested.length === 0) {
      if (depth > 0) causes.add(here !== undefined && !e.message.includes(here.replace(/^.*:/, ':')) ? `${e.message} (${here})` : e.message);
      return;
    }
    for (const n of nested) walk(n, here, depth + 1);
  };
  walk(err, undefined, 0);
  const top = err.message.replace(/\.$/, '');
  return causes.size === 0 ? top : `${top}: ${[...causes].join('; ')}`;
}

/** Closes a client without waiting for what it has in flight; never rejects. */
export function forceClose(client: Closable): Promise<void> {
  return new Promise((resolve) => {
    // A client exists only once the module is loaded.
    if (client instanceof loadedKafkaClient()!.Admin) client.close(() => resolve());
    else client.close(true, () => resolve());
  });
}
