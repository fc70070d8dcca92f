/**
 * How channel payloads travel between nodes. Offsets, history and delivery order agree only when
 * messages are published by the store itself (the Redis script's PUBLISH, or the memory store
 * synchronously), so channel topics ride on the pub/sub of the store:
 *
 * - the node's bus, when it is the store (memory bus and memory history, or the Redis bus with
 *   history in the same Redis);
 * - a pub/sub connection of its own to the history Redis, when `--history redis://…` names a
 *   Redis the bus is not (e.g. with a NATS or AMQP bus, which then carries the rest).
 */
import type { BusStatus } from '../bus/bus.js';
import { RedisBus } from '../bus/redis.js';
import { decodeEnvelope } from '../node/envelope.js';
import type { FanoutNode, TopicHandler } from '../node/node.js';

export interface ChannelTransport {
  /** True while payloads can be published and received. */
  readonly connected: boolean;
  /** Routes the topic's payloads to `handler`; kept across reconnects. */
  subscribeTopic(topic: string, handler: TopicHandler): void;
  unsubscribeTopic(topic: string): void;
  /** Resolves once the topic is live at the broker (idempotent). */
  subscribe(topic: string): Promise<void>;
  /** Publishes a complete envelope. Rejects with BusUnavailableError. */
  publish(topic: string, payload: Buffer): Promise<void>;
  /** Called on every status change, after topics were resubscribed. */
  onStatus(listener: (status: BusStatus) => void): void;
  close(): Promise<void>;
}

/** Channel topics on the node's own bus. */
export class NodeTransport implements ChannelTransport {
  constructor(private readonly node: FanoutNode) {}

  get connected(): boolean {
    return this.node.bus.connected;
  }

  subscribeTopic(topic: string, handler: TopicHandler): void {
    this.node.subscribeTopic(topic, handler);
  }

  unsubscribeTopic(topic: string): void {
    this.node.unsubscribeTopic(topic);
  }

  subscribe(topic: string): Promise<void> {
    return this.node.bus.subscribe(topic);
  }

  publish(topic: string, payload: Buffer): Promise<void> {
    return this.node.bus.publish(topic, payload);
  }

  onStatus(listener: (status: BusStatus) => void): void {
    this.node.onBusStatus(listener);
  }

  async close(): Promise<void> {}
}

/** Channel topics on the history Redis, with a pub/sub connection pair of their own. */
export class RedisTransport implements ChannelTransport {
  private readonly bus: RedisBus;
  private readonly topics = new Map<string, TopicHandler>();
  private readonly listeners: Array<(status: BusStatus) => void> = [];

  constructor(url: string, node: FanoutNode) {
    this.bus = new RedisBus(url);
    this.bus.onMessage((topic, payload) => {
      const handler = this.topics.get(topic);
      const envelope = handler && decodeEnvelope(payload);
      if (!envelope) return;
      try {
        handler(envelope.kind, envelope.body, envelope.origin);
      } catch (err) {
        node.logger.error({ err, topic }, 'channel message handler failed');
      }
    });
    this.bus.onStatus((status, cause) => {
      if (status === 'connected') for (const topic of this.topics.keys()) this.subscribe(topic).catch(() => {});
      if (status === 'disconnected') node.logger.warn({ err: cause?.message }, 'history redis pub/sub disconnected; retrying');
      for (const listener of this.listeners) listener(status);
    });
    this.bus.connect().catch((err: Error) => node.logger.warn({ err: err.message }, 'history redis pub/sub not reachable yet; retrying'));
  }

  get connected(): boolean {
    return this.bus.connected;
  }

  subscribeTopic(topic: string, handler: TopicHandler): void {
    const had = this.topics.has(topic);
    this.topics.set(topic, handler);
    if (!had && this.bus.connected) this.subscribe(topic).catch(() => {});
  }

  unsubscribeTopic(topic: string): void {
    if (this.topics.delete(topic)) this.bus.unsubscribe(topic).catch(() => {});
  }

  subscribe(topic: string): Promise<void> {
    return this.bus.subscribe(topic);
  }

  publish(topic: string, payload: Buffer): Promise<void> {
    return this.bus.publish(topic, payload);
  }

  onStatus(listener: (status: BusStatus) => void): void {
    this.listeners.push(listener);
  }

  close(): Promise<void> {
    return this.bus.close();
  }
}
