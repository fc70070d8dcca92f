/**
 * What the channel endpoint keeps per connection while it asks the back end (--subscribe-hook,
 * --publish-hook; the calls themselves are in src/hooks): the channels whose subscribe waits on
 * the hook, how many of its calls are in flight, and the order its publishes reach the store in.
 */
import type { ChannelVerdict, HookCaller } from '../hooks/hooks.js';
import type { Client } from '../transport/client.js';

/** The hooks as the channel endpoint calls them; either may be absent. */
export interface ChannelHooks {
  subscribe?(caller: HookCaller, channel: string): Promise<ChannelVerdict>;
  publish?(caller: HookCaller, channel: string, data: string): Promise<ChannelVerdict>;
}

/**
 * Hook calls one connection may have in flight; past it its requests are answered `rate_limited`
 * at once. --hook-concurrency bounds the node; this keeps one connection from taking all of it
 * while the back end is slow, so the other clients' calls still get through.
 */
export const MAX_HOOK_CALLS_PER_CONNECTION = 8;

export class ConnectionHooks {
  /** Channels whose subscribe waits on the hook's answer (they count as subscriptions meanwhile). */
  readonly subscribing = new Set<string>();
  /** Hook calls in flight. */
  calls = 0;
  /** The last publish step: each publish reaches the store after the one sent before it. */
  private chain: Promise<unknown> = Promise.resolve();

  get full(): boolean {
    return this.calls >= MAX_HOOK_CALLS_PER_CONNECTION;
  }

  /**
   * Runs `step` after the previous publish's step, so a connection's publishes are stored in the
   * order it sent them whatever order the back end answers in (the calls themselves run side by
   * side). `step` must start its store write before it returns, not wait for it.
   */
  inOrder<T>(step: () => Promise<T>): Promise<T> {
    const next = this.chain.then(step);
    this.chain = next.catch(() => {});
    return next;
  }
}

const states = new WeakMap<Client, ConnectionHooks>();

export function connectionHooks(client: Client): ConnectionHooks {
  let state = states.get(client);
  if (!state) states.set(client, (state = new ConnectionHooks()));
  return state;
}

/** Who asks, as the hooks' bodies name it. */
export function callerOf(client: Client): HookCaller {
  return { client: client.id, user: client.identity.user, meta: client.identity.meta };
}
