/**
 * A broker's client library, imported when it is first needed (its first connection) rather than
 * when the node starts: a node on another broker, and every CLI command, never load it. Used by
 * brokers/kafka/client.ts and brokers/nats/client.ts; adapters import the library's types
 * statically (erased at build) and its values through the loader.
 */
export class LazyModule<T> {
  private loading: Promise<T> | undefined;
  private value: T | undefined;

  constructor(private readonly importer: () => Promise<T>) {}

  /** The module; the first call imports it, later calls get the same promise. */
  load(): Promise<T> {
    this.loading ??= this.importer().then((module) => (this.value = module));
    return this.loading;
  }

  /** The module once {@link load} has resolved, else undefined. */
  get loaded(): T | undefined {
    return this.value;
  }
}
