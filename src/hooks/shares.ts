/**
 * How a node's --hook-concurrency slots are shared (docs/hooks.md, "Limits"), so that no one
 * client address, and no flood of pending upgrades, can take what established clients need:
 *
 * - connect-hook calls (pending upgrades: not yet admitted, anyone can make them) may hold at most
 *   {@link connectShare} slots, half of --hook-concurrency rounded down (at least 1); the other
 *   slots are reserved for subscribe and publish calls of established clients, which may use
 *   every slot the connect calls leave free. So an established client is never refused because
 *   upgrades are waiting (with --hook-concurrency 1 there is nothing to reserve: the one slot is
 *   shared);
 * - one client address may have at most {@link MAX_CONNECT_CALLS_PER_ADDRESS} connect calls and
 *   {@link MAX_HOOK_CALLS_PER_ADDRESS} subscribe and publish calls in flight, counted across all
 *   of its connections on this node.
 *
 * A call past a share is refused at once and never sent; nothing is queued. Counting is by the
 * address the gate sees (behind a proxy in --trust-proxy, the forwarded one).
 */

/** Connect-hook calls one client address may have in flight on a node; past it its upgrades get 503 at once. */
export const MAX_CONNECT_CALLS_PER_ADDRESS = 4;

/**
 * Subscribe and publish hook calls one client address may have in flight on a node, all its
 * connections together; past it its requests are answered `rate_limited` at once.
 */
export const MAX_HOOK_CALLS_PER_ADDRESS = 8;

/** Slots of --hook-concurrency that connect-hook calls may hold: half, rounded down, at least 1. */
export function connectShare(concurrency: number): number {
  return Math.max(1, Math.floor(concurrency / 2));
}

/** Which share a call draws on: the connect hook's, or established clients' (subscribe, publish). */
export type ShareKind = 'connect' | 'channel';

/** Why a call was not let through: the node's share is full (`node`), or the address's (`address`). */
export type ShareRefusal = { readonly limit: 'node' | 'address'; readonly message: string };

/** Counts per address, with no entry for an address that has nothing in flight. */
class AddressCounts {
  private readonly counts = new Map<string, number>();

  count(address: string): number {
    return this.counts.get(address) ?? 0;
  }

  add(address: string): void {
    this.counts.set(address, this.count(address) + 1);
  }

  remove(address: string): void {
    const n = this.count(address) - 1;
    if (n > 0) this.counts.set(address, n);
    else this.counts.delete(address);
  }

  get size(): number {
    return this.counts.size;
  }
}

/** The node's hook slots, by share and by address. Synchronous: a call takes its slot in the turn it is made. */
export class HookShares {
  readonly connectShare: number;
  private connectCalls = 0;
  private channelCalls = 0;
  private readonly byAddress: Record<ShareKind, AddressCounts> = { connect: new AddressCounts(), channel: new AddressCounts() };

  constructor(readonly concurrency: number) {
    this.connectShare = connectShare(concurrency);
  }

  /** Calls in flight now, both shares. */
  get pending(): number {
    return this.connectCalls + this.channelCalls;
  }

  /** Addresses with a call in flight (for tests: nothing is kept for an address once its calls end). */
  get addresses(): number {
    return this.byAddress.connect.size + this.byAddress.channel.size;
  }

  /** Takes a slot for a call from `address`, or says which share is full. Give it back with {@link release}. */
  take(kind: ShareKind, address: string): ShareRefusal | undefined {
    const perAddress = kind === 'connect' ? MAX_CONNECT_CALLS_PER_ADDRESS : MAX_HOOK_CALLS_PER_ADDRESS;
    const counts = this.byAddress[kind];
    if (counts.count(address) >= perAddress) {
      const what = kind === 'connect' ? 'connect-hook calls' : 'back-end hook calls';
      return { limit: 'address', message: `${perAddress} ${what} already in flight from this address; wait for their answers` };
    }
    if (this.pending >= this.concurrency) {
      return { limit: 'node', message: `${this.concurrency} hook calls already in flight (--hook-concurrency)` };
    }
    if (kind === 'connect' && this.connectCalls >= this.connectShare) {
      return { limit: 'node', message: `${this.connectShare} connect-hook calls already in flight (half of --hook-concurrency)` };
    }
    counts.add(address);
    if (kind === 'connect') this.connectCalls++;
    else this.channelCalls++;
    return undefined;
  }

  /** Gives back a slot {@link take} gave. */
  release(kind: ShareKind, address: string): void {
    this.byAddress[kind].remove(address);
    if (kind === 'connect') this.connectCalls--;
    else this.channelCalls--;
  }
}
