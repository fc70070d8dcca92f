/**
 * Webhooks in Pusher's format (`--pusher-webhook`, docs/pusher.md), so a back end's Pusher
 * webhook handler (the `pusher` libraries' `webhook()`) takes them unchanged: the body is
 * `{"time_ms":…,"events":[{"name","channel","user_id"?,"event"?,"data"?,"socket_id"?}]}`, signed
 * with `X-Pusher-Key: <key>` and `X-Pusher-Signature: <hex HMAC-SHA256 of the body with the app secret>`.
 */
import { createHmac } from 'node:crypto';
import type { WebhookEvent } from './queue.js';

export function pusherBody(timeMs: number, events: readonly WebhookEvent[]): string {
  return JSON.stringify({
    time_ms: timeMs,
    events: events.map((e) => ({
      name: e.name,
      channel: e.channel,
      ...(e.user !== undefined ? { user_id: e.user } : {}),
      ...(e.event !== undefined ? { event: e.event } : {}),
      ...(e.data !== undefined ? { data: e.data } : {}),
      ...(e.socket_id !== undefined ? { socket_id: e.socket_id } : {}),
    })),
  });
}

export function pusherSignature(key: string, secret: string): (body: Buffer) => Record<string, string> {
  return (body) => ({ 'x-pusher-key': key, 'x-pusher-signature': createHmac('sha256', secret).update(body).digest('hex') });
}
