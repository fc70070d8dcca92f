/**
 * What the Pusher endpoint reports for Pusher-format webhooks (issue 30 item 4, docs/pusher.md).
 * Not built yet: the endpoint calls these when given one, and no sender implements them; the
 * `--pusher-webhook` flag comes with the sender.
 */
export interface PusherHooks {
  occupied(channel: string, occupied: boolean): void;
  member(channel: string, userId: string, added: boolean): void;
  clientEvent(channel: string, event: string, data: unknown, socketId: string, userId: string | undefined): void;
  cacheMiss(channel: string): void;
}
