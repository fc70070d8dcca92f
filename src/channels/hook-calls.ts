/**
 * What the channel endpoint keeps per connection while it asks the back end (--subscribe-hook,
 * --publish-hook; the calls themselves, and how many a client address may have in flight, are
 * in src/hooks): the channels whose subscribe waits on the hook, the signal that abandons the
 * connection's calls when it closes, and the order its publishes reach the store in.
 */
import type { ChannelVerdict, HookCall, HookCaller } from '../hooks/hooks.js';
import type { Client } from '../transport/client.js';

/**
 * The hooks as the channel endpoint calls them, at the URL the channel's options give (its
 * namespace's hook, else --subscribe-hook / --publish-hook). `on` names the client's address and
 * abandons the call when it goes away.
 */
export interface ChannelHooks {
  subscribe(caller: HookCaller, channel: string, url: string, on: HookCall): Promise<ChannelVerdict>;
  publish(caller: HookCaller, channel: string, data: string, url: string, on: HookCall): Promise<ChannelVerdict>;
}

/** One publish hook call for a channel whose URL is already chosen. */
export type PublishAsk = (caller: HookCaller, channel: string, data: string, on: HookCall) => Promise<ChannelVerdict>;

export class ConnectionHooks {
  /** Channels whose subscribe waits on the hook's answer (they count as subscriptions meanwhile). */
  readonly subscribing = new Set<string>();
  /** Hook calls in flight. */
  private calls = 0;
  /** While calls are in flight: aborts them when the socket closes. No listener is kept on an idle connection. */
  private abandon: { readonly controller: AbortController; readonly onClose: () => void } | undefined;
  /** The last publish step: each publish reaches the store after the one sent before it. */
  private chain: Promise<unknown> = Promise.resolve();

  /**
   * Makes one hook call for `client`: `ask` gets the client's address and a signal that aborts
   * when the socket closes before the answer, so the back end's request is abandoned and its
   * slot freed at once.
   */
  call<T>(client: Client, ask: (on: HookCall) => Promise<T>): Promise<T> {
    if (!this.abandon) {
      const controller = new AbortController();
      const onClose = (): void => controller.abort();
      this.abandon = { controller, onClose };
      if (client.open) client.ws.once('close', onClose);
      else controller.abort();
    }
    const { signal } = this.abandon.controller;
    this.calls++;
    return ask({ address: client.ip, signal }).finally(() => {
      if (--this.calls > 0 || !this.abandon) return;
      client.ws.off('close', this.abandon.onClose);
      this.abandon = undefined;
    });
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

/** Made at a connection's first hook call, keyed weakly: it goes with the connection, and a connection that never asks the back end has none. */
const states = new WeakMap<Client, ConnectionHooks>();

/** `client`'s hook state, made on first use (only where a hook is about to be called). */
export function connectionHooks(client: Client): ConnectionHooks {
  let state = states.get(client);
  if (!state) states.set(client, (state = new ConnectionHooks()));
  return state;
}

/** Channels whose subscribe waits on the hook for `client`, without making anything for a client that has none. */
export function subscribingOf(client: Client): ReadonlySet<string> {
  return states.get(client)?.subscribing ?? NONE;
}

/** Cancels `client`'s subscribe to `channel` waiting on the hook; false if there was none. */
export function cancelSubscribing(client: Client, channel: string): boolean {
  return states.get(client)?.subscribing.delete(channel) ?? false;
}

const NONE: ReadonlySet<string> = new Set();

/** Who asks, as the hooks' bodies name it. */
export function callerOf(client: Client): HookCaller {
  return { client: client.id, user: client.identity.user, meta: client.identity.meta };
}
