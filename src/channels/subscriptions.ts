/**
 * This node's channels: which local sockets are subscribed to what, and the broadcast path.
 *
 * The node subscribes to a channel's bus topic while it has local subscribers. A bus payload of
 * a channel is the complete `message` (or `join`/`leave`) frame: it is framed once per node and
 * queued for every live subscriber (no JSON work per message, none per subscriber).
 *
 * Joining the live stream without loss or duplicates: a new subscription is first "joining". It
 * buffers every frame of the channel while the store is read; the read puts a fence on the
 * channel's stream at the exact point of the read. Frames buffered before the fence are in the
 * read's result (or older); frames after it are newer. Once both the read's result and the fence
 * are in, the subscriber gets the recovered messages, the `subscribed` reply, the frames buffered
 * after the fence, and then becomes live.
 */
import type { ReadResult } from '../history/store.js';
import type { Client } from '../node/client.js';
import type { SubscribeFrame } from '../protocol/frames.js';

/** One client's subscription to one channel. */
export class Subscription {
  /** Frames that came while joining; null once live. */
  buffer: Buffer[] | null = [];
  /** Index in {@link buffer} at which the fence arrived; -1 before. */
  fenceAt = -1;
  /** The store's answer; undefined until it came. */
  result: ReadResult | undefined;
  timer: NodeJS.Timeout | undefined;

  constructor(
    readonly client: Client,
    readonly channel: LocalChannel,
    readonly request: SubscribeFrame,
    /** The fence token of this subscription's read. */
    readonly token: string,
  ) {}

  get live(): boolean {
    return this.buffer === null;
  }
}

/** A channel with local subscribers. */
export class LocalChannel {
  /** Live subscribers: the broadcast set. */
  readonly live = new Set<Client>();
  /** Subscriptions joining, by fence token. */
  readonly joining = new Map<string, Subscription>();

  constructor(
    readonly name: string,
    readonly topic: string,
    /** Configured with presence (--presence). */
    readonly presence: boolean,
  ) {}

  get empty(): boolean {
    return this.live.size === 0 && this.joining.size === 0;
  }
}

/** A client's subscriptions, kept in `client.state`. */
export type ClientSubscriptions = Map<string, Subscription>;

export function subscriptionsOf(client: Client): ClientSubscriptions {
  let subs = client.state as ClientSubscriptions | undefined;
  if (!subs) client.state = subs = new Map();
  return subs;
}
