/**
 * The broker seen by a node: topics carrying opaque bytes between the nodes of a cluster.
 *
 * Delivery guarantee: at most once, in publish order per publishing node and topic, to every node
 * subscribed to the topic while the bus is connected (the publisher's own node included: the node
 * filters its own messages by the envelope's origin). Nothing is stored: a node that was
 * disconnected misses what was published meanwhile; channel history covers that gap.
 *
 * Adapters only move bytes. The envelope, own-message filtering and resubscription live once, in
 * the node: after a status change to `connected` the node calls {@link Bus.subscribe} again for
 * every topic it needs, so `subscribe` must be idempotent.
 */

/** The bus's connection state, as a typed status stream. */
export type BusStatus = 'connecting' | 'connected' | 'disconnected' | 'closed';

export type BusMessageHandler = (topic: string, payload: Buffer) => void;
export type BusStatusListener = (status: BusStatus, cause?: Error) => void;

export interface Bus {
  /** The adapter's name: memory, redis, redis-cluster, nats, amqp, kafka. */
  readonly kind: string;
  /** True while publishes can reach the broker. */
  readonly connected: boolean;
  /** Starts connecting. Resolves once connected, or rejects after the adapter's first failure; it keeps retrying either way until {@link close}. */
  connect(): Promise<void>;
  /** Sends bytes to every node subscribed to `topic`. Rejects with BusUnavailableError when the broker cannot take it. */
  publish(topic: string, payload: Buffer): Promise<void>;
  /** Idempotent. Rejects when the broker cannot be reached; the node retries on reconnect. */
  subscribe(topic: string): Promise<void>;
  unsubscribe(topic: string): Promise<void>;
  /** The one handler of incoming messages (the node's). */
  onMessage(handler: BusMessageHandler): void;
  /** Adds a status listener; it is called on every change. */
  onStatus(listener: BusStatusListener): void;
  /** Closes the connections; safe to call twice. */
  close(): Promise<void>;
}

/** Shared plumbing for adapters: the status stream and the message handler. */
export abstract class BaseBus implements Bus {
  abstract readonly kind: string;
  protected status: BusStatus = 'connecting';
  protected handler: BusMessageHandler = () => {};
  private readonly statusListeners: BusStatusListener[] = [];

  get connected(): boolean {
    return this.status === 'connected';
  }

  onMessage(handler: BusMessageHandler): void {
    this.handler = handler;
  }

  onStatus(listener: BusStatusListener): void {
    this.statusListeners.push(listener);
  }

  /** Moves to `status` and tells the listeners, once per change. */
  protected setStatus(status: BusStatus, cause?: Error): void {
    if (this.status === status || this.status === 'closed') return;
    this.status = status;
    for (const listener of this.statusListeners) listener(status, cause);
  }

  abstract connect(): Promise<void>;
  abstract publish(topic: string, payload: Buffer): Promise<void>;
  abstract subscribe(topic: string): Promise<void>;
  abstract unsubscribe(topic: string): Promise<void>;
  abstract close(): Promise<void>;
}
