/** `/app/` with any key but the app's: Pusher's answer, `pusher:error` 4001, then the close with 4001 (pusher-js does not retry). */
import type { Endpoint } from '../node/endpoint.js';
import { frameText, type Outbox } from '../node/outbox.js';
import { encodePusherError, PUSHER_CODES } from '../protocol/pusher.js';
import type { Client } from '../transport/client.js';

export class UnknownAppEndpoint implements Endpoint {
  readonly path = '/app/';
  readonly prefix = true;

  constructor(
    private readonly context: {
      readonly outbox: Pick<Outbox, 'send'>;
      readonly closeClient: (client: Client, code: number, reason: string) => void;
    },
  ) {}

  open(client: Client): void {
    this.context.outbox.send(client, frameText(encodePusherError(PUSHER_CODES.APP_NOT_FOUND, 'App key not in this cluster')));
    this.context.closeClient(client, PUSHER_CODES.APP_NOT_FOUND, 'App key not in this cluster');
  }

  message(): void {}

  close(): void {}
}
