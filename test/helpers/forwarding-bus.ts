/**
 * A bus that hands every call to a memory bus, for tests that make one call fail while the link
 * stays up (a refused subscribe, a refused publish): subclasses override that one call.
 */
import { BaseBus } from '../../src/stores/bus.js';
import type { MemoryBus } from '../../src/brokers/memory/bus.js';

export class ForwardingBus extends BaseBus {
  readonly kind = 'memory';

  constructor(protected readonly inner: MemoryBus) {
    super();
    inner.onMessage((topic, payload) => this.handler(topic, payload));
    inner.onStatus((status, cause) => this.setStatus(status, cause));
  }

  connect(): Promise<void> {
    return this.inner.connect();
  }

  publish(topic: string, payload: Buffer): Promise<void> {
    return this.inner.publish(topic, payload);
  }

  subscribe(topic: string): Promise<void> {
    return this.inner.subscribe(topic);
  }

  unsubscribe(topic: string): Promise<void> {
    return this.inner.unsubscribe(topic);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
