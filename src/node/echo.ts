/**
 * `/ws/echo`, the classic contract: every text message a client sends reaches every /ws/echo
 * client on every node as `Received: <message>`, the sender included.
 */
import { CloseCode } from '../errors.js';
import type { Client } from './client.js';
import type { Endpoint } from './endpoint.js';
import { EnvelopeKind } from './envelope.js';
import type { FanoutNode } from './node.js';
import { frameText } from './outbox.js';

export const ECHO_PATH = '/ws/echo';
const PREFIX = Buffer.from('Received: ');

export class EchoEndpoint implements Endpoint {
  readonly path = ECHO_PATH;
  private readonly clients = new Set<Client>();
  private readonly topic: string;

  constructor(private readonly node: FanoutNode) {
    this.topic = node.topic('echo');
    node.subscribeTopic(this.topic, (kind, body) => {
      if (kind === EnvelopeKind.ECHO) this.deliver(body);
    });
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
    this.node.publish(this.topic, EnvelopeKind.ECHO, text).catch(() => {
      // Counted and logged by the node; the echo protocol has no error frame to answer with.
    });
  }

  /** The broadcast: framed once, queued for every local echo socket. */
  private deliver(text: Buffer): void {
    this.node.outbox.broadcast(this.clients, frameText(text));
  }

  async stop(): Promise<void> {
    this.node.unsubscribeTopic(this.topic);
  }
}
