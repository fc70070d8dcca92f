/**
 * What the Pusher endpoint reports for Pusher-format webhooks (--pusher-webhook, docs/pusher.md).
 * Not built yet: the endpoint calls these, and no sender implements them (the option is refused
 * at start until one does).
 */
export interface PusherHooks {
  occupied(channel: string, occupied: boolean): void;
  member(channel: string, userId: string, added: boolean): void;
  clientEvent(channel: string, event: string, data: unknown, socketId: string, userId: string | undefined): void;
  cacheMiss(channel: string): void;
}
