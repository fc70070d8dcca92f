/**
 * The bench's Pusher lane, server side (issue 30): the same Fanout nodes with one Pusher app
 * (`--pusher-app-id`, `--pusher-key`, `--pusher-secret`), its clients speaking pusher-js's frames
 * on `WS /app/{key}` (pusher-wire.ts), and its publisher a back end using the `pusher` server
 * library: `trigger(channel, event, data)`, i.e. `POST /apps/{id}/events` signed as Pusher signs,
 * through HAProxy. Its points sit beside the `/ws/v1` channel rows of the same run (pusher-report.ts).
 *
 * Latency is measured as on the channel rows: the stamp rides in the event's data, an object as an
 * app sends it (`{"t":"#seq|µs#"}`), which the library sends as its JSON text, so a client reads
 * `{"event":"bench","channel":"bench","data":"{\"t\":\"#…#\"}"}` and the stamp is found in it.
 */
import { randomBytes } from 'node:crypto';
import { Agent } from 'node:http';
import PusherServer from 'pusher';
import type { Target } from './loadgen.js';
import { pusherPath } from './pusher-wire.js';

/** The event name every benchmark message is triggered as. */
export const PUSHER_BENCH_EVENT = 'bench';

/** How the Pusher rows are labelled: the endpoint and how the publisher publishes. */
export const PUSHER_LABEL = 'Fanout Pusher /app/{key} (2 nodes, Redis)';
export const PUSHER_PUBLISHER = 'POST /apps/{id}/events (the `pusher` library)';

/** One app's credentials, fresh for each system started. */
export interface PusherBenchApp {
  readonly id: string;
  readonly key: string;
  readonly secret: string;
}

export function pusherBenchApp(): PusherBenchApp {
  return { id: `bench-${randomBytes(4).toString('hex')}`, key: randomBytes(10).toString('hex'), secret: randomBytes(16).toString('hex') };
}

/** The `fanout serve` flags that turn the app on. */
export function pusherServeArgs(app: PusherBenchApp): string[] {
  return ['--pusher-app-id', app.id, '--pusher-key', app.key, '--pusher-secret', app.secret];
}

/**
 * An idle kept-alive connection is dropped after this long, well before HAProxy's
 * `timeout http-keep-alive` (5 s) closes it: Node's global agent keeps them 5 s too, and a trigger
 * sent on a connection HAProxy is closing fails with "socket hang up" (seen on a loaded machine).
 */
export const PUSHER_IDLE_MS = 1000;

/**
 * The lane's target behind HAProxy at `port`: pusher-js's path, and a publisher that triggers each
 * message with the `pusher` library. Its requests share kept-alive connections (as fetch's do on
 * the `/ws/v1` HTTP row), so a trigger costs a request, not a TCP handshake through HAProxy.
 */
export function pusherTarget(host: string, port: number, channel: string, app: PusherBenchApp): Target {
  const agent = new Agent({ keepAlive: true, timeout: PUSHER_IDLE_MS });
  const pusher = new PusherServer({ appId: app.id, key: app.key, secret: app.secret, host, port: String(port), useTLS: false, agent });
  return {
    host,
    port,
    path: pusherPath(app.key),
    protocol: 'pusher',
    channel,
    post: async (data) => {
      let res;
      try {
        res = await pusher.trigger(channel, PUSHER_BENCH_EVENT, { t: data });
      } catch (err) {
        // The library's RequestError holds the answer's status and body, or the network error.
        const e = err as { status?: number; body?: string; error?: Error; message: string };
        throw new Error(`POST /apps/${app.id}/events: ${e.status !== undefined ? `${e.status} ${e.body ?? ''}` : (e.error?.message ?? e.message)}`);
      }
      await res.text(); // read, so that its connection is free for the next trigger
    },
  };
}
