/**
 * Channel patterns (syntax and matching in protocol/patterns.ts) and who may do what on a channel.
 */
import { compileGlob, globMatches, type Glob } from '../protocol/patterns.js';
import type { Identity } from '../transport/client.js';

/** A compiled list of patterns. */
export class PatternList {
  private readonly exact = new Set<string>();
  private readonly globs: Glob[] = [];
  readonly any: boolean;

  constructor(readonly patterns: readonly string[]) {
    let any = false;
    for (const p of patterns) {
      if (p === '*') any = true;
      else if (!p.includes('*')) this.exact.add(p);
      else this.globs.push(compileGlob(p));
    }
    this.any = any;
  }

  get empty(): boolean {
    return this.patterns.length === 0;
  }

  matches(channel: string): boolean {
    if (this.any || this.exact.has(channel)) return true;
    for (const g of this.globs) if (globMatches(g, channel)) return true;
    return false;
  }
}

/** Compiled patterns, cached per token claim array (identities are shared per connection). */
const claimCache = new WeakMap<readonly string[], PatternList>();

export type Action = 'subscribe' | 'publish';

/** Whether every client, token or not, may act on `channel`. */
export type AnonymousRule = (channel: string) => boolean;

/**
 * Decides subscribe (which also covers history and presence) and publish rights.
 *
 * - A client with a token (`identity.channels` or `identity.user` set) may use the channels its
 *   token's `channels` claim matches, plus what anonymous clients may use; publishing follows its
 *   `publish` claim instead when it has one. The connect hook's answer gives the same lists.
 * - Every client may use the channels the `--anonymous-*` patterns match, or those whose
 *   namespace says `anonymous-subscribe` / `anonymous-publish`. The patterns' default is `*`
 *   when no JWT is configured (an open hub) and nothing when one is.
 */
export class Authorizer {
  private readonly anonymous: Readonly<Record<Action, { matches(channel: string): boolean }>>;

  /** Each of the anonymous rights as patterns, or as a function of the channel (its namespace decides, config/namespaces.ts). */
  constructor(anonymousSubscribe: readonly string[] | AnonymousRule, anonymousPublish: readonly string[] | AnonymousRule) {
    const rule = (given: readonly string[] | AnonymousRule) => (typeof given === 'function' ? { matches: given } : new PatternList(given));
    this.anonymous = { subscribe: rule(anonymousSubscribe), publish: rule(anonymousPublish) };
  }

  allowed(identity: Identity, action: Action, channel: string): boolean {
    if (this.anonymous[action].matches(channel)) return true;
    const claim = action === 'publish' ? (identity.publish ?? identity.channels) : identity.channels;
    if (!claim) return false;
    let list = claimCache.get(claim);
    if (!list) claimCache.set(claim, (list = new PatternList(claim)));
    return list.matches(channel);
  }
}
