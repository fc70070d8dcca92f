/**
 * NATS core pub/sub with the `nats` client: one connection publishes and subscribes, one NATS
 * subject per bus topic. NATS keeps nothing: delivery is at most once, in order per publishing
 * connection, which is the {@link Bus} contract as it stands. Channel history does not ride the
 * bus: with a NATS bus it lives in JetStream by default (brokers/nats/jetstream.ts), or where
 * `--history` says (docs/brokers.md).
 *
 * Reconnects: the client reconnects by itself and sends its subscriptions again; the adapter
 * reports `disconnected`/`connected` from the client's status stream, and keeps one subscription
 * per topic so the node's resubscribe after `connected` costs nothing. The first connection is
 * retried here (the client gives up on a server that never answered), so `connect()` can reject
 * at once and still connect later.
 */
import type { ConnectionOptions, NatsConnection, Subscription } from 'nats';
import type { NatsAddress } from '../../config/bus-address.js';
import { BusUnavailableError, ConfigError, errorMessage } from '../../errors.js';
import { BaseBus } from '../../stores/bus.js';
import { busRetryDelay, Sleeper, FirstAttempt } from '../../stores/retry.js';
import { loadNats, nats } from './client.js';

/**
 * How every Fanout connection to NATS connects (the bus, and the presence store's own): servers
 * and credentials from the parsed address, endless reconnects, dead peers found by pings.
 */
export function natsConnectOptions(address: NatsAddress, name: string): ConnectionOptions {
  const { servers, user, pass, token } = address;
  return {
    servers: [...servers],
    ...(user !== undefined ? { user } : {}),
    ...(pass !== undefined ? { pass } : {}),
    ...(token !== undefined ? { token } : {}),
    name,
    timeout: 2000,
    reconnect: true,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    // Dead peers are found by TCP resets at once; pings catch a silent network.
    pingInterval: 10_000,
    maxPingOut: 2,
  };
}

/**
 * Refused credentials as the one configuration error a node says at start, blamed on the flag that
 * gave the URL; undefined for any other connection failure (those are retried).
 */
export function natsCredentialsRefused(err: unknown, flag: '--bus' | '--history'): ConfigError | undefined {
  if (!/authorization violation|authentication/i.test(errorMessage(err))) return undefined;
  return new ConfigError(flag, 'the NATS server refused the credentials (Authorization Violation); give the right ones in the URL, nats://user:password@host:port or nats://token@host:port');
}

/**
 * Opens one Fanout connection to NATS, retrying with the bus's backoff: the first step of the
 * loops that keep a connection (the bus, JetStream history, KV presence). `failed` hears each
 * failure and returns true to stop for good; resolves undefined then, or once `closing()` holds.
 */
export async function connectNats(
  address: NatsAddress,
  name: string,
  options: { readonly sleeper: Sleeper; readonly closing: () => boolean; readonly failed: (err: unknown) => boolean },
): Promise<NatsConnection | undefined> {
  for (let attempt = 0; !options.closing(); ) {
    let nc: NatsConnection;
    try {
      nc = await (await loadNats()).connect(natsConnectOptions(address, name));
    } catch (err) {
      if (options.failed(err)) return undefined;
      await options.sleeper.sleep(busRetryDelay(attempt++));
      continue;
    }
    if (!options.closing()) return nc;
    await nc.close().catch(() => {});
  }
  return undefined;
}

/** The NATS adapter (`--bus nats://…`): core pub/sub, one subject per topic. */
export class NatsBus extends BaseBus {
  readonly kind = 'nats';
  private nc: NatsConnection | undefined;
  private readonly subs = new Map<string, Subscription>();
  private readonly sleeper = new Sleeper();
  private readonly first = new FirstAttempt();
  private closing = false;
  private connectedOnce = false;

  private readonly address: NatsAddress;

  /** `address` is the --bus URL parsed at load (config/bus-address.ts): servers and credentials apart. */
  constructor(address: NatsAddress) {
    super();
    this.address = address;
  }

  connect(): Promise<void> {
    return this.first.start(() => void this.run());
  }

  /** Connects, waits for the connection to end for good, and starts over, until {@link close}. */
  private async run(): Promise<void> {
    while (!this.closing) {
      const nc = await connectNats(this.address, 'fanout', {
        sleeper: this.sleeper,
        closing: () => this.closing,
        failed: (err) => {
          // Wrong or missing credentials at start do not heal by retrying: a configuration error,
          // said once. (Refused later, the server may be mid-reload: the client keeps retrying.)
          const refused = this.connectedOnce ? undefined : natsCredentialsRefused(err, '--bus');
          const error = refused ?? new BusUnavailableError(`nats: ${errorMessage(err)}`, { cause: err });
          this.setStatus('disconnected', error);
          this.first.settled(error);
          return refused !== undefined;
        },
      });
      if (!nc) return;
      this.connectedOnce = true;
      this.nc = nc;
      void this.watch(nc);
      this.setStatus('connected');
      this.first.settled();
      const err = await nc.closed();
      // Only a closed connection lands here (not a reconnect): its subscriptions are gone.
      this.nc = undefined;
      this.subs.clear();
      if (!this.closing) this.setStatus('disconnected', err ?? new Error('nats connection closed'));
    }
  }

  private async watch(nc: NatsConnection): Promise<void> {
    for await (const s of nc.status()) {
      if (this.nc !== nc) return;
      if (s.type === nats().Events.Disconnect) this.setStatus('disconnected', new Error(`nats disconnected from ${String(s.data)}`));
      else if (s.type === nats().Events.Reconnect) this.setStatus('connected');
    }
  }

  async publish(topic: string, payload: Buffer): Promise<void> {
    const nc = this.nc;
    // While the client reconnects it would buffer publishes; the contract says reject instead.
    if (!nc || !this.connected) throw new BusUnavailableError(`nats is ${this.status}`);
    try {
      nc.publish(topic, payload);
    } catch (err) {
      throw new BusUnavailableError(`nats publish failed: ${errorMessage(err)}`, { cause: err });
    }
  }

  async subscribe(topic: string): Promise<void> {
    const nc = this.nc;
    if (!nc || !this.connected) throw new BusUnavailableError(`nats is ${this.status}`);
    if (this.subs.has(topic)) return;
    try {
      const sub = nc.subscribe(topic, {
        callback: (err, msg) => {
          if (!err) this.handler(msg.subject, Buffer.from(msg.data.buffer, msg.data.byteOffset, msg.data.byteLength));
        },
      });
      this.subs.set(topic, sub);
      // The SUB is on the wire once the server answers a PING: then publishes reach this node.
      await nc.flush();
    } catch (err) {
      throw new BusUnavailableError(`nats subscribe failed: ${errorMessage(err)}`, { cause: err });
    }
  }

  async unsubscribe(topic: string): Promise<void> {
    const sub = this.subs.get(topic);
    if (!sub) return;
    this.subs.delete(topic);
    try {
      sub.unsubscribe();
      // Resolve once the server has the UNSUB, so nothing published after this reaches the node.
      await this.nc?.flush();
    } catch {
      /* the connection is closed or reconnecting: the subscription is gone from the client */
    }
  }

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    this.setStatus('closed');
    this.first.settled(new BusUnavailableError('nats bus closed'));
    this.sleeper.wake();
    const nc = this.nc;
    this.nc = undefined;
    this.subs.clear();
    if (nc) await nc.close().catch(() => {});
  }
}
