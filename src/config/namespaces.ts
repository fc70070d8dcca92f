/**
 * Namespaces (issue 27, docs/config.md): kinds of channels with their own options. A config file
 * (or `createConfig`) lists them under `namespaces:`, each with a channel `pattern`; the first
 * whose pattern matches a channel gives that channel's options, an option it leaves out is the
 * top-level one, and a channel no namespace matches gets the top-level values. The pattern flags
 * (--presence, --anonymous-subscribe, --anonymous-publish) keep deciding for what the namespaces
 * leave out, so they stay a shorthand.
 */
import { z } from 'zod';
import { compileGlob, globMatches, type Glob } from '../protocol/patterns.js';
import { hookUrl, int, pattern, seconds } from './values.js';

/** Most seconds an `idempotency-window` (top level or namespace) may be: a day. */
export const MAX_IDEMPOTENCY_WINDOW = 86_400;

/** Most namespaces in one configuration: matching walks them in order for each new channel. */
export const MAX_NAMESPACES = 100;

/** One namespace as a file (`history-size`) or `createConfig` (`historySize`) gives it. */
export const namespaceSchema = z.strictObject({
  pattern: pattern(),
  historySize: int(0).optional(),
  historyTtl: seconds().optional(),
  presence: z.boolean({ error: 'expected true or false' }).optional(),
  joinLeave: z.boolean({ error: 'expected true or false' }).optional(),
  recovery: z.boolean({ error: 'expected true or false' }).optional(),
  anonymousSubscribe: z.boolean({ error: 'expected true or false' }).optional(),
  anonymousPublish: z.boolean({ error: 'expected true or false' }).optional(),
  clientPublish: z.boolean({ error: 'expected true or false' }).optional(),
  subscribeHook: z.union([hookUrl(), z.literal(false)], { error: 'expected an http:// or https:// URL, or false to skip --subscribe-hook' }).optional(),
  publishHook: z.union([hookUrl(), z.literal(false)], { error: 'expected an http:// or https:// URL, or false to skip --publish-hook' }).optional(),
  cache: z.boolean({ error: 'expected true or false' }).optional(),
  delta: z.union([z.literal('fossil'), z.literal(false)], { error: 'expected fossil (the one delta encoding), or false' }).optional(),
  idempotencyWindow: int(1, MAX_IDEMPOTENCY_WINDOW).optional(),
});

/** `namespaces:`: at most {@link MAX_NAMESPACES}, each pattern once. */
export const namespacesSchema = z
  .array(namespaceSchema, { error: 'expected a list of namespaces (- pattern: chat:*, …)' })
  .max(MAX_NAMESPACES, { error: `expected at most ${MAX_NAMESPACES} namespaces` })
  .superRefine((list, ctx) => {
    const seen = new Map<string, number>();
    for (const [i, ns] of list.entries()) {
      const first = seen.get(ns.pattern);
      if (first !== undefined) ctx.addIssue({ code: 'custom', path: [i, 'pattern'], message: `namespaces[${first}] has the same pattern and wins, so this one would never apply` });
      else seen.set(ns.pattern, i);
    }
  });

/** One namespace, validated. */
export type Namespace = Readonly<z.output<typeof namespaceSchema>>;

/** The options that apply to one channel: its namespace's, else the top-level ones. */
export interface ChannelOptions {
  /** The pattern of the namespace that applies; null when none does (top-level values). */
  readonly namespace: string | null;
  /** Messages kept for history and recovery. */
  readonly historySize: number;
  /** Seconds history is kept after the channel's last message (0: no expiry). */
  readonly historyTtl: number;
  /** Presence lists for the channel. */
  readonly presence: boolean;
  /** `join`/`leave` frames to subscribers (only with presence). */
  readonly joinLeave: boolean;
  /** A `since` may be answered from history; when false it is answered `recovered:false`. */
  readonly recovery: boolean;
  /** Every client may subscribe (and read history and presence), token or not. */
  readonly anonymousSubscribe: boolean;
  /** Every client may publish, token or not. */
  readonly anonymousPublish: boolean;
  /** Clients may publish at all; when false only `POST /api/publish` and the Kafka ingest do. */
  readonly clientPublish: boolean;
  /** The subscribe hook asked for the channel; false: none. */
  readonly subscribeHook: string | false;
  /** The publish hook asked for the channel; false: none. */
  readonly publishHook: string | false;
  /** Delta compression for subscribers that ask for it (`"delta":true`): `fossil`, or false (docs/protocol.md). */
  readonly delta: 'fossil' | false;
  /** Seconds a publish's `idempotency_key` is remembered in the channel (docs/protocol.md, "Idempotent publish"). */
  readonly idempotencyWindow: number;
  /** Last-value channel: the latest message is kept even with `historySize` 0 and given to each new subscriber (`latest`). */
  readonly cache: boolean;
}

/** The top-level values namespaces fall back to, as the node's config holds them. */
export interface TopLevel {
  readonly historySize: number;
  readonly historyTtl: number;
  readonly idempotencyWindow: number;
  readonly presence: readonly string[];
  readonly anonymousSubscribe?: readonly string[] | undefined;
  readonly anonymousPublish?: readonly string[] | undefined;
  readonly jwt: boolean;
  readonly connectHook?: string | undefined;
  readonly subscribeHook?: string | undefined;
  readonly publishHook?: string | undefined;
  readonly namespaces: readonly Namespace[];
}

/**
 * The --anonymous-* patterns, or their defaults: open to all only when nobody says who clients
 * are (no JWT, no connect hook). With a subscribe hook, the back end decides what the patterns
 * leave out, so they leave out all.
 */
export function anonymousPatterns(top: TopLevel): { readonly subscribe: readonly string[]; readonly publish: readonly string[] } {
  const authenticated = top.jwt || top.connectHook !== undefined;
  const open = (closed: boolean): string[] => (closed ? [] : ['*']);
  return {
    subscribe: top.anonymousSubscribe ?? open(authenticated || top.subscribeHook !== undefined),
    publish: top.anonymousPublish ?? open(authenticated),
  };
}

/** Channels whose resolved options are kept (see {@link Namespaces.resolve}). */
const RESOLVED_CACHE_SIZE = 10_000;

/** A channel pattern compiled once: `*` alone, an exact name or a glob. */
type Matcher = (channel: string) => boolean;

function matcher(patterns: readonly string[]): Matcher {
  const exact = new Set(patterns.filter((p) => !p.includes('*')));
  if (patterns.includes('*')) return () => true;
  const globs: Glob[] = patterns.filter((p) => p.includes('*')).map(compileGlob);
  return (channel) => exact.has(channel) || globs.some((g) => globMatches(g, channel));
}

/**
 * Resolves a channel's options: the first namespace whose pattern matches, its options over the
 * top-level ones. Cheap enough per call (a few patterns, each linear in the name); callers that
 * hold a channel keep its options.
 */
export class Namespaces {
  private readonly list: ReadonlyArray<{ readonly ns: Namespace; readonly matches: Matcher }>;
  private readonly presence: Matcher;
  private readonly anonymousSubscribe: Matcher;
  private readonly anonymousPublish: Matcher;
  private readonly cache = new Map<string, ChannelOptions>();

  constructor(private readonly top: TopLevel) {
    this.list = top.namespaces.map((ns) => ({ ns, matches: matcher([ns.pattern]) }));
    this.presence = matcher(top.presence);
    const anonymous = anonymousPatterns(top);
    this.anonymousSubscribe = matcher(anonymous.subscribe);
    this.anonymousPublish = matcher(anonymous.publish);
  }

  /** The namespaces, in the order they are tried. */
  get namespaces(): readonly Namespace[] {
    return this.top.namespaces;
  }

  /** The namespace that applies to `channel`, or undefined. */
  namespaceOf(channel: string): Namespace | undefined {
    return this.list.find((entry) => entry.matches(channel))?.ns;
  }

  /**
   * The options that apply to `channel`. Asked several times per publish (rights, hooks, the
   * history count), so answers are kept for recent channels; the cache is bounded (channel
   * names come from clients) and simply emptied when full.
   */
  resolve(channel: string): ChannelOptions {
    let options = this.cache.get(channel);
    if (!options) {
      if (this.cache.size >= RESOLVED_CACHE_SIZE) this.cache.clear();
      this.cache.set(channel, (options = Object.freeze(this.compute(channel))));
    }
    return options;
  }

  private compute(channel: string): ChannelOptions {
    const ns = this.namespaceOf(channel);
    const presence = ns?.presence ?? this.presence(channel);
    const subscribeHook = ns?.subscribeHook ?? this.top.subscribeHook ?? false;
    return {
      namespace: ns?.pattern ?? null,
      historySize: ns?.historySize ?? this.top.historySize,
      historyTtl: ns?.historyTtl ?? this.top.historyTtl,
      presence,
      joinLeave: presence && (ns?.joinLeave ?? true),
      recovery: ns?.recovery ?? true,
      anonymousSubscribe: ns?.anonymousSubscribe ?? this.anonymousSubscribeDefault(channel, subscribeHook),
      anonymousPublish: ns?.anonymousPublish ?? this.anonymousPublish(channel),
      clientPublish: ns?.clientPublish ?? true,
      subscribeHook,
      publishHook: ns?.publishHook ?? this.top.publishHook ?? false,
      delta: ns?.delta ?? false,
      idempotencyWindow: ns?.idempotencyWindow ?? this.top.idempotencyWindow,
      cache: ns?.cache ?? false,
    };
  }

  /**
   * --anonymous-subscribe when given; else, as {@link anonymousPatterns} does for the whole node,
   * closed when a subscribe hook applies to the channel (the back end decides what the patterns
   * leave out), so a namespace's own hook is asked and `subscribe-hook: false` opens its channels
   * again where nobody says who clients are.
   */
  private anonymousSubscribeDefault(channel: string, hook: string | false): boolean {
    if (this.top.anonymousSubscribe !== undefined) return this.anonymousSubscribe(channel);
    return !(this.top.jwt || this.top.connectHook !== undefined || hook !== false);
  }

}

/**
 * The messages a store keeps per channel: the largest history size of the top level and any
 * namespace. Stores are sized once; the channel layer serves each channel at most its own
 * namespace's size (history pages and recovery), so a smaller namespace behaves as if its store
 * kept only that many.
 */
export function storedHistorySize(config: Pick<TopLevel, 'historySize' | 'namespaces'>): number {
  // A last-value namespace keeps at least its latest message, whatever its history size.
  return Math.max(config.historySize, ...config.namespaces.map((ns) => Math.max(ns.historySize ?? 0, ns.cache === true ? 1 : 0)));
}

/**
 * The age a store that has one retention for all channels keeps (the JetStream stream's max_age,
 * the Kafka index's): the longest of the top level and any namespace, 0 (no age limit) when any
 * of them is 0. Each channel is then served (Kafka, JetStream) or expired (memory, Redis) at its
 * own namespace's age, {@link historyTtlOf}.
 */
export function storedHistoryTtl(config: Pick<TopLevel, 'historyTtl' | 'namespaces'>): number {
  const ttls = [config.historyTtl, ...config.namespaces.map((ns) => ns.historyTtl ?? config.historyTtl)];
  return ttls.includes(0) ? 0 : Math.max(...ttls);
}

/**
 * Each channel's history ttl in seconds (its namespace's `history-ttl`, else --history-ttl), for
 * the stores; undefined when no namespace sets one, so every channel has --history-ttl.
 */
export function historyTtlOf(config: Pick<TopLevel, 'historyTtl' | 'namespaces'>): ((channel: string) => number) | undefined {
  if (!config.namespaces.some((ns) => ns.historyTtl !== undefined)) return undefined;
  const list = config.namespaces.map((ns) => ({ ttl: ns.historyTtl, matches: matcher([ns.pattern]) }));
  // First match wins, as in {@link Namespaces.resolve}; kept per channel in a bounded map.
  const known = new Map<string, number>();
  return (channel) => {
    let ttl = known.get(channel);
    if (ttl === undefined) {
      if (known.size >= RESOLVED_CACHE_SIZE) known.clear();
      known.set(channel, (ttl = list.find((entry) => entry.matches(channel))?.ttl ?? config.historyTtl));
    }
    return ttl;
  };
}

/**
 * The longest idempotency window of the top level and any namespace: what a store with one
 * window for all channels (the JetStream stream's duplicate window) must keep keys for.
 */
export function longestIdempotencyWindow(config: Pick<TopLevel, 'idempotencyWindow' | 'namespaces'>): number {
  return Math.max(config.idempotencyWindow, ...config.namespaces.map((ns) => ns.idempotencyWindow ?? 0));
}
