/**
 * The in-process bus: the default for one node, and how tests run a whole cluster in one process.
 * A {@link MemoryBroker} plays the broker; each node gets its own {@link MemoryBus} on it.
 */
import { BusUnavailableError } from '../../errors.js';
import { BaseBus } from '../../stores/bus.js';

/** The in-process broker several {@link MemoryBus}es share. Delivers asynchronously, like a real one. */
export class MemoryBroker {
  private readonly topics = new Map<string, Set<MemoryBus>>();

  /** @internal */
  add(topic: string, bus: MemoryBus): void {
    let set = this.topics.get(topic);
    if (!set) this.topics.set(topic, (set = new Set()));
    set.add(bus);
  }

  /** @internal */
  remove(topic: string, bus: MemoryBus): void {
    const set = this.topics.get(topic);
    if (!set) return;
    set.delete(bus);
    if (set.size === 0) this.topics.delete(topic);
  }

  /** @internal */
  deliver(topic: string, payload: Buffer): void {
    const set = this.topics.get(topic);
    if (!set) return;
    for (const bus of set) queueMicrotask(() => bus.receive(topic, payload));
  }
}

export class MemoryBus extends BaseBus {
  readonly kind = 'memory';
  private readonly topics = new Set<string>();

  /** The broker this bus is on (memory history and presence stores are shared per broker). */
  constructor(readonly broker: MemoryBroker = new MemoryBroker()) {
    super();
  }

  async connect(): Promise<void> {
    this.setStatus('connected');
  }

  async publish(topic: string, payload: Buffer): Promise<void> {
    if (!this.connected) throw new BusUnavailableError(`memory bus is ${this.status}`);
    this.broker.deliver(topic, payload);
  }

  async subscribe(topic: string): Promise<void> {
    if (!this.connected) throw new BusUnavailableError(`memory bus is ${this.status}`);
    this.topics.add(topic);
    this.broker.add(topic, this);
  }

  async unsubscribe(topic: string): Promise<void> {
    this.topics.delete(topic);
    this.broker.remove(topic, this);
  }

  /** Test hook: drops the connection (subscriptions are lost, as with a real broker). */
  disconnect(): void {
    for (const topic of this.topics) this.broker.remove(topic, this);
    this.topics.clear();
    this.setStatus('disconnected', new Error('memory bus disconnected'));
  }

  /** Test hook: comes back after {@link disconnect}. */
  reconnect(): void {
    this.setStatus('connected');
  }

  /** @internal */
  receive(topic: string, payload: Buffer): void {
    if (this.connected && this.topics.has(topic)) this.handler(topic, payload);
  }

  async close(): Promise<void> {
    for (const topic of this.topics) this.broker.remove(topic, this);
    this.topics.clear();
    this.setStatus('closed');
  }
}
