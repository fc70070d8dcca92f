/** What the parts of the channel layer (streams, catch-up, presence) share: the endpoint provides it. */
import type { Logger } from '../logger.js';
import type { Outbox } from '../node/outbox.js';
import type { ErrorCode } from '../protocol/frames.js';
import type { Client } from '../transport/client.js';
import type { RequestBudget } from './budget.js';
import type { Subscription } from './subscriptions.js';
import type { ChannelService } from './service.js';

export interface ChannelRuntime {
  readonly service: ChannelService;
  readonly outbox: Pick<Outbox, 'send' | 'broadcast' | 'reply'>;
  readonly logger: Logger;
  /** What each connection's requests in flight have reserved of --max-buffered. */
  readonly budget: RequestBudget;
  /** Keeps async work from failing unseen; the endpoint's stop() waits for it. */
  track(promise: Promise<unknown>): void;
  /** A fence token no other fence of this cluster has. */
  token(): string;
  /** Queues one server frame (JSON text) for `client`. */
  send(client: Client, json: string): void;
  /** Queues a reply the client asked for (JSON text): it streams as the client reads (Outbox.reply). */
  reply(client: Client, json: string): void;
  /** `sub` left its channel (unsubscribed, closed, failed, expired): what is kept about it elsewhere goes. */
  ended(sub: Subscription): void;
  /** Queues an `error` frame for `client`. */
  error(client: Client, code: ErrorCode, message: string, id?: number, channel?: string): void;
}
