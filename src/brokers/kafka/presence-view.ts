/**
 * The in-memory view of the Kafka presence topic (brokers/kafka/presence.ts): every node applies
 * the topic's records in log order, so every node's view at a given offset holds the same entries
 * and node states. Only the local times a record was read at (`seenAt`) differ between nodes.
 *
 * Records (keys are UTF-8; values JSON; `null` is a tombstone):
 * - `p\0<channel>\0<client>\0<inc>` → `{"channel","client","user","meta"?,"node","inc"}`: a present client,
 *   joined under incarnation `inc` of `node`. A tombstone removes it; a tombstone with the header
 *   `swept: <node>` was written by a sweep, and the view of that node reports the client departed
 *   when it removes it (the first such tombstone in the log removes it: one report, cluster-wide).
 * - `r\0<key>` → a revocation entry (stores/store.ts, `RevocationEntry`; `<key>` its `revocationKey`):
 *   the cluster's revocations live in the same compacted topic; a tombstone removes one.
 * - `n\0<node>` → `{"inc"}`: a heartbeat of a node's incarnation; `{"dead":inc}`: a sweeper found
 *   that incarnation silent (the node, should it come back, registers a new one); a tombstone:
 *   the node left, or a sweep finished.
 */
import type { Json } from '../../protocol/frames.js';
import { entryFrom } from '../../stores/presence-entry.js';
import { parseRevocation, type PresenceEntry, type RevocationEntry } from '../../stores/store.js';

/** The presence entry a view entry stands for. */
export function entryOfView(e: ViewEntry): PresenceEntry {
  return e.meta === undefined ? { client: e.client, user: e.user } : { client: e.client, user: e.user, meta: e.meta };
}

/** A present client as the topic holds it. */
export interface ViewEntry {
  readonly key: string;
  readonly channel: string;
  readonly client: string;
  readonly user: string | null;
  /** The connection's meta, when it has one (src/stores/presence-entry.ts). */
  readonly meta?: Json;
  readonly node: string;
  readonly inc: string;
}

/** What the view knows of a node: its latest incarnation, alive or marked dead, and when this node last read a heartbeat of it. */
export interface NodeState {
  readonly inc: string | null;
  readonly dead: boolean;
  /** Local monotonic time (ms) of the latest heartbeat read; for dead nodes, of the marker. */
  readonly seenAt: number;
}

/** What applying one record changed that the store acts on. */
export type ViewChange =
  | { readonly type: 'departed'; readonly entry: ViewEntry }
  | { readonly type: 'swept'; readonly node: string; readonly inc: string | null }
  | { readonly type: 'entry-removed'; readonly key: string }
  | undefined;

/** The header of a sweep's tombstones: the sweeping node's id. */
export const SWEPT_HEADER = 'swept';

export function entryKey(channel: string, client: string, inc: string): string {
  return `p\0${channel}\0${client}\0${inc}`;
}

export function nodeKey(node: string): string {
  return `n\0${node}`;
}

export class PresenceView {
  private readonly entries = new Map<string, ViewEntry>();
  private readonly byChannel = new Map<string, Map<string, ViewEntry>>();
  private readonly byNode = new Map<string, Map<string, ViewEntry>>();
  /** Per node with entries, the local time an entry of it was last read (for entries of nodes that have no heartbeat record). */
  private readonly entrySeenAt = new Map<string, number>();
  readonly nodes = new Map<string, NodeState>();
  /** The revocations the topic holds, by view key (`r\0<key>`). */
  readonly revocations = new Map<string, RevocationEntry>();

  constructor(private readonly me: string) {}

  /** How many entries the view holds (all channels). */
  get size(): number {
    return this.entries.size;
  }

  clear(): void {
    this.entries.clear();
    this.byChannel.clear();
    this.byNode.clear();
    this.entrySeenAt.clear();
    this.nodes.clear();
    this.revocations.clear();
  }

  /** Applies one record read at local time `now`; `sweptBy` is the value of its {@link SWEPT_HEADER}, if any. */
  apply(key: string, value: Buffer | null | undefined, sweptBy: string | undefined, now: number): ViewChange {
    if (key.startsWith('p\0')) return this.applyEntry(key, value, sweptBy, now);
    if (key.startsWith('n\0')) return this.applyNode(key.slice(2), value, now);
    if (key.startsWith('r\0')) this.applyRevocation(key, value);
    return undefined;
  }

  private applyRevocation(key: string, value: Buffer | null | undefined): void {
    const entry = value === null || value === undefined ? undefined : parseRevocation(parse(value));
    if (entry) this.revocations.set(key, entry);
    else this.revocations.delete(key);
  }

  private applyEntry(key: string, value: Buffer | null | undefined, sweptBy: string | undefined, now: number): ViewChange {
    const old = this.entries.get(key);
    if (old) this.remove(old);
    if (value === null || value === undefined) {
      if (!old) return undefined;
      if (sweptBy === this.me) return { type: 'departed', entry: old };
      // My current incarnation's entry swept by another node: it took this node for dead.
      if (sweptBy !== undefined && old.node === this.me) return { type: 'swept', node: this.me, inc: old.inc };
      return { type: 'entry-removed', key };
    }
    const parsed = parse(value);
    if (!parsed || typeof parsed.channel !== 'string' || typeof parsed.client !== 'string' || typeof parsed.node !== 'string' || typeof parsed.inc !== 'string') return undefined;
    const entry: ViewEntry = { key, channel: parsed.channel, ...entryFrom(parsed.client, parsed), node: parsed.node, inc: parsed.inc };
    this.entries.set(key, entry);
    index(this.byChannel, entry.channel, entry);
    index(this.byNode, entry.node, entry);
    this.entrySeenAt.set(entry.node, now);
    return undefined;
  }

  private applyNode(node: string, value: Buffer | null | undefined, now: number): ViewChange {
    const state = this.nodes.get(node);
    if (value === null || value === undefined) {
      this.nodes.delete(node);
      return state && !state.dead ? { type: 'swept', node, inc: state.inc } : undefined;
    }
    const parsed = parse(value);
    if (!parsed) return undefined;
    if ('dead' in parsed) {
      const inc = typeof parsed.dead === 'string' ? parsed.dead : null;
      // The first marker of an incarnation counts; one for an incarnation that is not the latest is stale.
      if (state?.dead || (state && state.inc !== inc)) return undefined;
      this.nodes.set(node, { inc, dead: true, seenAt: now });
      return { type: 'swept', node, inc };
    }
    if (typeof parsed.inc !== 'string') return undefined;
    // A heartbeat of an incarnation already marked dead (sent before its node saw the marker) does not revive it.
    if (state?.dead && state.inc === parsed.inc) return undefined;
    this.nodes.set(node, { inc: parsed.inc, dead: false, seenAt: now });
    return undefined;
  }

  private remove(entry: ViewEntry): void {
    this.entries.delete(entry.key);
    unindex(this.byChannel, entry.channel, entry.key);
    unindex(this.byNode, entry.node, entry.key);
    if (!this.byNode.has(entry.node)) this.entrySeenAt.delete(entry.node);
  }

  /** The clients present in `channel` whose node and incarnation `live` accepts, each once, at most `max`. */
  list(channel: string, live: (node: string, inc: string) => boolean, max: number): PresenceEntry[] {
    const out: PresenceEntry[] = [];
    const seen = new Set<string>();
    for (const e of this.byChannel.get(channel)?.values() ?? []) {
      if (seen.has(e.client) || !live(e.node, e.inc)) continue;
      seen.add(e.client);
      out.push(entryOfView(e));
      if (out.length >= max) break;
    }
    return out;
  }

  /** Up to `max` entries of `node` whose incarnation is not `keep`. */
  entriesOf(node: string, keep: string | null, max: number): ViewEntry[] {
    const out: ViewEntry[] = [];
    for (const e of this.byNode.get(node)?.values() ?? []) {
      if (e.inc === keep) continue;
      out.push(e);
      if (out.length >= max) break;
    }
    return out;
  }

  /** Nodes that have entries, with the local time an entry of each was last read. */
  nodesWithEntries(): IterableIterator<[node: string, seenAt: number]> {
    return this.entrySeenAt.entries();
  }
}

function parse(value: Buffer): Record<string, unknown> | undefined {
  try {
    const parsed: unknown = JSON.parse(value.toString('utf8'));
    return typeof parsed === 'object' && parsed !== null ? (parsed as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

function index(map: Map<string, Map<string, ViewEntry>>, at: string, entry: ViewEntry): void {
  let m = map.get(at);
  if (!m) map.set(at, (m = new Map()));
  m.set(entry.key, entry);
}

function unindex(map: Map<string, Map<string, ViewEntry>>, at: string, key: string): void {
  const m = map.get(at);
  if (!m) return;
  m.delete(key);
  if (m.size === 0) map.delete(at);
}
