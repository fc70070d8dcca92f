/**
 * RabbitMQ (AMQP 0-9-1) with amqplib: one durable direct exchange, `fanout.bus`, with a bus topic
 * as the routing key; each node owns one exclusive, auto-delete, server-named queue bound once per
 * topic it subscribes to. A direct exchange matches routing keys exactly, as Redis channels do: a
 * topic exchange would read `*` and `#` words in a channel name as wildcards, and a fanout exchange
 * would send every topic to every node.
 *
 * Publishes go through a confirm channel: `publish` resolves when the broker has taken the
 * message (routed to every bound queue, or to none when no node listens) and rejects with
 * BusUnavailableError on a nack, a closed channel, a blocked connection or no connection. Delivery
 * to the queues is at most once (consumed without acks), in order per publishing node.
 *
 * Reconnects: a lost connection (broker restart, `rabbitmqctl close_connection`, missed
 * heartbeats) takes the queue with it, so the adapter connects again with backoff, declares the
 * exchange and a new queue, and reports `connected`; the node then binds every topic again.
 */
import type { Channel, ChannelModel, ConfirmChannel, ConsumeMessage } from 'amqplib';
import { BusUnavailableError, ConfigError, errorMessage } from '../../errors.js';
import { BaseBus } from '../../stores/bus.js';
import { busRetryDelay, Sleeper, FirstAttempt } from '../../stores/retry.js';

/** The exchange every Fanout node publishes to; clusters are kept apart by `--bus-prefix` in the routing keys. */
export const AMQP_EXCHANGE = 'fanout.bus';

/** How the broker says the credentials are wrong (amqplib's handshake error). */
const ACCESS_REFUSED = /ACCESS[-_]REFUSED|\b403\b/;

interface Session {
  readonly conn: ChannelModel;
  readonly pub: ConfirmChannel;
  readonly sub: Channel;
  readonly queue: string;
}

/** The RabbitMQ adapter (`--bus amqp://…`): a direct exchange, one exclusive queue per node, publisher confirms. */
export class AmqpBus extends BaseBus {
  readonly kind = 'amqp';
  private session: Session | undefined;
  private blocked = false;
  private readonly sleeper = new Sleeper();
  private readonly first = new FirstAttempt();
  private closing = false;
  /** A session was up once: a later refusal is not taken for wrong credentials. */
  private connectedOnce = false;

  /** `url` is the --bus URL as parsed at load (config/bus-address.ts), a heartbeat added. */
  constructor(private readonly url: string) {
    super();
  }

  connect(): Promise<void> {
    return this.first.start(() => void this.run());
  }

  /** Opens a session, waits until the connection is lost, and starts over, until {@link close}. */
  private async run(): Promise<void> {
    let attempt = 0;
    while (!this.closing) {
      let conn: ChannelModel | undefined;
      try {
        // amqplib loads with the first connection: a node on another broker never loads it.
        conn = await (await import('amqplib')).connect(this.url, { timeout: 5000 });
        // 'close' always follows an 'error'; the loop below handles both.
        conn.on('error', () => {});
        const lost = new Promise<Error | undefined>((resolve) => conn!.once('close', resolve));
        conn.on('blocked', (reason: string) => this.setBlocked(true, reason));
        conn.on('unblocked', () => this.setBlocked(false));
        const pub = await conn.createConfirmChannel();
        const sub = await conn.createChannel();
        for (const ch of [pub, sub]) {
          // A channel only closes on its own after a protocol error: start the session over.
          ch.on('error', () => {});
          ch.once('close', () => {
            if (this.session?.conn === conn) conn!.close().catch(() => {});
          });
        }
        await sub.assertExchange(AMQP_EXCHANGE, 'direct', { durable: true });
        const { queue } = await sub.assertQueue('', { exclusive: true, autoDelete: true, durable: false });
        await sub.consume(queue, (msg: ConsumeMessage | null) => {
          if (msg) this.handler(msg.fields.routingKey, msg.content);
          // null: the broker cancelled the consumer (queue deleted); start the session over.
          else conn!.close().catch(() => {});
        }, { noAck: true });
        if (this.closing) {
          await conn.close().catch(() => {});
          return;
        }
        attempt = 0;
        this.connectedOnce = true;
        this.session = { conn, pub, sub, queue };
        this.blocked = false;
        this.setStatus('connected');
        this.first.settled();
        const cause = await lost;
        this.session = undefined;
        if (!this.closing) this.setStatus('disconnected', cause ?? new Error('amqp connection closed'));
      } catch (err) {
        conn?.close().catch(() => {});
        if (!this.connectedOnce && ACCESS_REFUSED.test(errorMessage(err))) {
          // Wrong credentials at start do not heal by retrying: a configuration error, said once.
          // (Refused later, after the node was in, the broker may be mid-restart: keep retrying.)
          const refused = new ConfigError('--bus', 'the broker refused the user or password (ACCESS_REFUSED); check the credentials in the amqp:// URL');
          this.setStatus('disconnected', refused);
          this.first.settled(refused);
          return;
        }
        const error = new BusUnavailableError(`amqp: ${errorMessage(err)}`, { cause: err });
        this.setStatus('disconnected', error);
        this.first.settled(error);
        await this.sleeper.sleep(busRetryDelay(attempt++));
      }
    }
  }

  /** A blocked connection (broker memory or disk alarm) takes no publishes: report it as down. */
  private setBlocked(blocked: boolean, reason?: string): void {
    this.blocked = blocked;
    if (blocked) this.setStatus('disconnected', new Error(`amqp connection blocked: ${reason ?? ''}`));
    else if (this.session) this.setStatus('connected');
  }

  async publish(topic: string, payload: Buffer): Promise<void> {
    const session = this.session;
    if (!session || !this.connected || this.blocked) throw new BusUnavailableError(`amqp is ${this.blocked ? 'blocked' : this.status}`);
    await new Promise<void>((resolve, reject) => {
      try {
        session.pub.publish(AMQP_EXCHANGE, topic, payload, {}, (err: unknown) => {
          if (err) reject(new BusUnavailableError(`amqp publish not confirmed: ${errorMessage(err)}`, { cause: err }));
          else resolve();
        });
      } catch (err) {
        reject(new BusUnavailableError(`amqp publish failed: ${errorMessage(err)}`, { cause: err }));
      }
    });
  }

  async subscribe(topic: string): Promise<void> {
    const session = this.session;
    if (!session || !this.connected) throw new BusUnavailableError(`amqp is ${this.status}`);
    try {
      await session.sub.bindQueue(session.queue, AMQP_EXCHANGE, topic);
    } catch (err) {
      throw new BusUnavailableError(`amqp subscribe failed: ${errorMessage(err)}`, { cause: err });
    }
  }

  async unsubscribe(topic: string): Promise<void> {
    const session = this.session;
    if (!session) return;
    await session.sub.unbindQueue(session.queue, AMQP_EXCHANGE, topic).catch(() => {});
  }

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    this.setStatus('closed');
    this.first.settled(new BusUnavailableError('amqp bus closed'));
    this.sleeper.wake();
    const session = this.session;
    this.session = undefined;
    // Closing the connection deletes the exclusive queue with it.
    if (session) await session.conn.close().catch(() => {});
  }
}

