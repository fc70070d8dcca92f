/**
 * `/ws/echo`, the classic contract: every text message a client sends reaches every /ws/echo
 * client on every node as `Received: <message>`, the sender included.
 *
 * Delivery model: local first. The sender's node delivers to its own sockets at once (they keep
 * working while the broker is away) and publishes on the bus; the other nodes deliver what the
 * bus brings, and the sender's node drops its own message when the bus echoes it back.
 */
import { CloseCode } from '../errors.js';
import type { Endpoint } from '../node/endpoint.js';
import { EnvelopeKind } from '../protocol/envelope.js';
import { frameText, type Outbox } from '../node/outbox.js';
import type { Topics } from '../node/topics.js';
import type { Client } from '../transport/client.js';

export const ECHO_PATH = '/ws/echo';
const PREFIX = Buffer.from('Received: ');

/** What the echo endpoint uses of its node. */
export interface EchoContext {
  readonly outbox: Pick<Outbox, 'broadcast'>;
  readonly topics: Topics;
  /** The bus topic of the echo broadcast (under the cluster's --bus-prefix). */
  readonly topic: string;
}

export class EchoEndpoint implements Endpoint {
  readonly path = ECHO_PATH;
  private readonly clients = new Set<Client>();

  constructor(private readonly context: EchoContext) {
    context.topics.subscribeTopic(
      context.topic,
      (kind, body) => {
        if (kind === EnvelopeKind.ECHO) this.deliver(body);
      },
      'drop',
    );
  }

  get size(): number {
    return this.clients.size;
  }

  open(client: Client): void {
    this.clients.add(client);
  }

  close(client: Client): void {
    this.clients.delete(client);
  }

  message(client: Client, data: Buffer, isBinary: boolean): void {
    if (isBinary) {
      client.ws.close(CloseCode.UNSUPPORTED_DATA, 'text messages only');
      return;
    }
    const text = Buffer.concat([PREFIX, data]);
    // Local sockets first, straight away: they keep working while the broker is away.
    this.deliver(text);
    this.context.topics.publish(this.context.topic, EnvelopeKind.ECHO, text).catch(() => {
      // Counted and logged by the topic router; the echo protocol has no error frame to answer with.
    });
  }

  /** The broadcast: framed once, queued for every local echo socket. */
  private deliver(text: Buffer): void {
    this.context.outbox.broadcast(this.clients, frameText(text));
  }

  async stop(): Promise<void> {
    this.context.topics.unsubscribeTopic(this.context.topic);
  }
}
