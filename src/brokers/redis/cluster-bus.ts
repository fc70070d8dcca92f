/**
 * Redis Cluster with Redis 7 sharded pub/sub (SPUBLISH/SSUBSCRIBE): a topic lives in the shard
 * that owns its hash slot, so a message crosses only that shard instead of the whole cluster bus,
 * and pub/sub traffic scales out with the number of shards.
 *
 * ioredis 5 speaks sharded pub/sub (`spublish`, `ssubscribe`, the `smessageBuffer` event, and a
 * `shardedSubscribers` Cluster option). The ioredis Cluster client is used here only to learn the
 * topology (which master owns which slot); each master gets two plain connections of our own, one
 * that publishes and one that subscribes, with no offline queue. Two reasons: the Cluster client
 * reorders commands sent while a node connection is still opening (measured: 1000 SPUBLISHes in
 * flight on a fresh client arrived out of order), and its sharded subscriber group resubscribes on
 * its own and reports no state. With our own connections the adapter tells the node the truth:
 * `connected` only while the topology is known and every master's two connections are ready. Any
 * loss, or a change of which master owns which slots (failover, resharding), reports
 * `disconnected` then `connected`, and the node subscribes every topic again, each on the master
 * that now owns it.
 *
 * URL: `redis-cluster://[user:pass@]host:port[,host:port…]` — any reachable nodes; the rest of the
 * cluster is discovered. Parsed at load (config/bus-address.ts); the adapter takes the address.
 */
import calculateSlot from 'cluster-key-slot';
import { Cluster, Redis } from 'ioredis';
import type { RedisClusterAddress } from '../../config/bus-address.js';
import { BusUnavailableError, errorMessage } from '../../errors.js';
import { BaseBus } from '../../stores/bus.js';
import { redisOptions, redisRetryDelay } from './bus.js';

interface Shard {
  readonly pub: Redis;
  readonly sub: Redis;
}

/** The Redis Cluster adapter (`--bus redis-cluster://…`): sharded pub/sub, two connections per master. */
export class RedisClusterBus extends BaseBus {
  readonly kind = 'redis-cluster';
  private readonly cluster: Cluster;
  private readonly address: RedisClusterAddress;
  /** A publishing and a subscribing connection per master, keyed `host:port` as in `cluster.slots`. */
  private readonly shards = new Map<string, Shard>();
  /** Which master owns which slots, as last seen; a change means the node must resubscribe. */
  private layout = '';
  private closing = false;

  constructor(address: RedisClusterAddress) {
    super();
    this.address = address;
    const { username, password } = this.address;
    const { lazyConnect: _l, retryStrategy: _r, enableOfflineQueue: _e, ...nodeOptions } = redisOptions({ connectionName: 'fanout-pub', username, password });
    this.cluster = new Cluster([...this.address.nodes], {
      lazyConnect: true,
      enableOfflineQueue: false,
      clusterRetryStrategy: redisRetryDelay,
      slotsRefreshInterval: 2000,
      redisOptions: nodeOptions,
    });
    this.cluster.on('error', (err: Error) => this.update(err));
    this.cluster.on('node error', () => {});
    this.cluster.on('ready', () => this.syncSubscribers());
    this.cluster.on('refresh', () => this.syncSubscribers());
    this.cluster.on('close', () => this.update(new Error('cluster connection closed')));
    this.cluster.on('end', () => this.update(new Error('cluster connection ended')));
  }

  /** The slot → master map as a short string; only what the subscribers depend on. */
  private currentLayout(): string {
    const slots = this.cluster.slots;
    const ranges: string[] = [];
    let owner: string | undefined;
    for (let slot = 0; slot < 16384; slot++) {
      const master = slots[slot]?.[0] ?? '-';
      if (master !== owner) {
        ranges.push(`${slot}=${master}`);
        owner = master;
      }
    }
    return ranges.join(' ');
  }

  /** Keeps one pair of connections per master; a new layout makes the node resubscribe. */
  private syncSubscribers(): void {
    if (this.closing || this.cluster.status !== 'ready') return this.update();
    const layout = this.currentLayout();
    if (layout === this.layout) return this.update();
    this.layout = layout;
    const masters = new Set<string>();
    for (const owners of this.cluster.slots) if (owners?.[0]) masters.add(owners[0]);
    for (const [key, shard] of this.shards) {
      if (masters.has(key)) continue;
      this.shards.delete(key);
      shard.pub.disconnect();
      shard.sub.disconnect();
    }
    for (const key of masters) {
      if (!this.shards.has(key)) this.shards.set(key, { pub: this.connection(key, 'fanout-spub'), sub: this.connection(key, 'fanout-ssub') });
    }
    // Subscriptions on a master that lost slots were dropped by Redis (SUNSUBSCRIBE): report a
    // change so the node subscribes every topic again where it now lives.
    if (this.status === 'connected') this.setStatus('disconnected', new Error('cluster slots moved'));
    this.update();
  }

  private connection(key: string, connectionName: string): Redis {
    const colon = key.lastIndexOf(':');
    const { username, password } = this.address;
    const conn = new Redis({
      host: key.slice(0, colon),
      port: Number(key.slice(colon + 1)),
      ...redisOptions({ connectionName, autoResubscribe: false, username, password }),
    });
    conn.on('error', (err: Error) => this.update(err));
    conn.on('ready', () => this.update());
    conn.on('close', () => this.update(new Error(`${connectionName} connection to ${key} closed`)));
    conn.on('end', () => this.update(new Error(`${connectionName} connection to ${key} ended`)));
    // An SSUBSCRIBE hit a moved slot: ask the cluster for the new layout (syncSubscribers follows).
    conn.on('moved', () => this.cluster.refreshSlotsCache());
    conn.on('smessageBuffer', (channel: Buffer, message: Buffer) => this.handler(channel.toString(), message));
    conn.connect().catch(() => {
      /* retried by the connection's retryStrategy; the status says so */
    });
    return conn;
  }

  private update(cause?: Error): void {
    if (this.closing) return;
    const ready =
      this.cluster.status === 'ready' &&
      this.shards.size > 0 &&
      [...this.shards.values()].every((s) => s.pub.status === 'ready' && s.sub.status === 'ready');
    if (ready) this.setStatus('connected');
    else if (this.status === 'connected' || cause) this.setStatus('disconnected', cause);
  }

  async connect(): Promise<void> {
    try {
      await this.cluster.connect();
    } catch (err) {
      throw new BusUnavailableError(`redis-cluster: ${errorMessage(err)}`, { cause: err });
    }
    this.syncSubscribers();
    if (this.connected) return;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new BusUnavailableError('redis-cluster: the masters did not all answer within 5 s')), 5000);
      this.onStatus((status) => {
        if (status !== 'connected' && status !== 'closed') return;
        clearTimeout(timer);
        resolve();
      });
    });
  }

  async publish(topic: string, payload: Buffer): Promise<void> {
    const shard = this.shardOf(topic);
    if (!this.connected || !shard || shard.pub.status !== 'ready') throw new BusUnavailableError('redis-cluster is not connected');
    try {
      await shard.pub.spublish(topic, payload);
    } catch (err) {
      const message = errorMessage(err);
      // The slot moved since the last topology refresh: learn the new one (the status follows).
      if (message.startsWith('MOVED') || message.startsWith('ASK')) this.cluster.refreshSlotsCache();
      throw new BusUnavailableError(`redis-cluster publish failed: ${message}`, { cause: err });
    }
  }

  async subscribe(topic: string): Promise<void> {
    const sub = this.shardOf(topic)?.sub;
    if (!sub || sub.status !== 'ready') throw new BusUnavailableError(`redis-cluster: no ready subscriber for ${topic}`);
    try {
      await sub.ssubscribe(topic);
    } catch (err) {
      throw new BusUnavailableError(`redis-cluster subscribe failed: ${errorMessage(err)}`, { cause: err });
    }
  }

  async unsubscribe(topic: string): Promise<void> {
    const sub = this.shardOf(topic)?.sub;
    if (!sub || sub.status !== 'ready') return;
    await sub.sunsubscribe(topic).catch(() => {});
  }

  /** The connections of the master that owns `topic`'s slot. */
  private shardOf(topic: string): Shard | undefined {
    const master = this.cluster.slots[calculateSlot(topic)]?.[0];
    return master === undefined ? undefined : this.shards.get(master);
  }

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    this.setStatus('closed');
    const subs = [...this.shards.values()].flatMap((s) => [s.pub, s.sub]);
    this.shards.clear();
    await Promise.allSettled([this.cluster.quit(), ...subs.map((s) => s.quit())]);
    this.cluster.disconnect();
    for (const s of subs) s.disconnect();
  }
}
