/**
 * How channel history is laid out in JetStream, and the recovery rule on it: pure functions, no
 * connection (brokers/nats/jetstream.ts uses them; the unit tests check them).
 *
 * One stream per --bus-prefix, `FANOUT_<prefix>`, with the subjects `fanout-log.<prefix>.>`:
 * - `fanout-log.<prefix>.m.<channel>`: the channel's messages, one subject per channel;
 * - `fanout-log.<prefix>.c.<channel>`: the channel's fences and presence events, stored so they
 *   take their place in the channel's order.
 * The stream republishes everything it stores to `fanout-live.<prefix>.>` (same tokens after the
 * prefix), the core subjects nodes subscribe to. `<prefix>` and `<channel>` are written with
 * {@link subjectToken}, so any name is one subject token.
 */
import { createHash } from 'node:crypto';

/** Characters kept as they are in a subject token; every other byte is written `%HH`. */
const PLAIN = /^[A-Za-z0-9_-]$/;

/** Header naming the node that published a message (the envelope's origin). */
export const ORIGIN_HEADER = 'Fanout-Origin';
/** Header with the publishing node's clock at the publish (ms since the epoch): the envelope's publish time, for the latency metric. */
export const TIME_HEADER = 'Fanout-Time';
/** Header JetStream puts the stored sequence in on a republished message. */
export const SEQUENCE_HEADER = 'Nats-Sequence';

/**
 * `name` as one NATS subject token: letters, digits, `_` and `-` as they are, every other UTF-8
 * byte (`.`, `*`, `>`, spaces, `%`, non-ASCII) as `%HH`. Reversible ({@link fromSubjectToken}),
 * so two names never share a subject. The empty name is `%`.
 */
export function subjectToken(name: string): string {
  if (name === '') return '%';
  let out = '';
  for (const ch of name) {
    if (PLAIN.test(ch)) out += ch;
    else for (const byte of Buffer.from(ch, 'utf8')) out += `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** The name a {@link subjectToken} stands for. */
export function fromSubjectToken(token: string): string {
  if (token === '%') return '';
  return token.includes('%') ? decodeURIComponent(token) : token;
}

/** The subjects of one --bus-prefix's stream. */
export interface StreamLayout {
  readonly stream: string;
  /** `fanout-log.<prefix>.>`: the stream's subjects. */
  readonly subjects: string;
  /** The stream's republish rule: what it stores, again on `fanout-live.<prefix>.>`. */
  readonly republish: { readonly src: string; readonly dest: string };
  /** `fanout-log.<prefix>.`: the stored subjects start with this. */
  readonly storedBase: string;
  /** `fanout-live.<prefix>.`: the republished subjects start with this. */
  readonly liveBase: string;
  /** `fanout-live.<prefix>.c.`: republished control subjects start with this. */
  readonly liveControlPrefix: string;
}

/**
 * The stream and subjects of `prefix`. A stream name allows no `.`, `*`, `>`, `/`, `\` or spaces,
 * so other characters are replaced, with a hash of the prefix appended when any was, to keep
 * distinct prefixes on distinct streams.
 */
export function streamLayout(prefix: string): StreamLayout {
  const plain = prefix.replace(/[^A-Za-z0-9_-]/g, '_');
  const stream = plain === prefix ? `FANOUT_${prefix}` : `FANOUT_${plain}_${createHash('sha256').update(prefix).digest('hex').slice(0, 8)}`;
  const token = subjectToken(prefix);
  const storedBase = `fanout-log.${token}.`;
  const liveBase = `fanout-live.${token}.`;
  return {
    stream,
    subjects: `${storedBase}>`,
    republish: { src: `${storedBase}>`, dest: `${liveBase}>` },
    storedBase,
    liveBase,
    liveControlPrefix: `${liveBase}c.`,
  };
}

/** A channel's message subject (stored). */
export function channelSubject(layout: StreamLayout, channel: string): string {
  return `${layout.storedBase}m.${subjectToken(channel)}`;
}

/** A channel's control subject (stored): fences and presence events. */
export function controlSubject(layout: StreamLayout, channel: string): string {
  return `${layout.storedBase}c.${subjectToken(channel)}`;
}

/** The republished subjects a node subscribes to for a channel: its messages, its control messages. */
export function liveSubjects(layout: StreamLayout, channel: string): [string, string] {
  const token = subjectToken(channel);
  return [`${layout.liveBase}m.${token}`, `${layout.liveBase}c.${token}`];
}

/**
 * A stream's epoch: 16 hex digits from its name and creation time. A stream deleted and created
 * again (or lost by the server) numbers from 1 again under a new epoch. Hex, like every epoch, so
 * it sits in the message frame unescaped (protocol/message-frame.ts).
 */
export function streamEpoch(stream: string, created: string): string {
  return createHash('sha256').update(`${stream}\n${created}`).digest('hex').slice(0, 16);
}

/** What a read learned about a channel and its stream, for {@link completeAfter}. */
export interface ChannelExtent {
  /** Sequence of the channel's oldest retained message; undefined when it has none. */
  readonly first: number | undefined;
  /** How many messages of the channel the stream holds. */
  readonly count: number;
  /** The stream's max_msgs_per_subject. */
  readonly perSubject: number;
  /** The stream's first retained sequence (anything older was removed). */
  readonly streamFirst: number;
}

/**
 * The lowest position S such that every message of the channel after S is still in the stream:
 * recovery from S is complete (`covered`) exactly when S is at least this.
 *
 * Why it holds: JetStream removes a channel's messages oldest first only (max_msgs_per_subject
 * drops the subject's oldest, max_age and the stream limits drop the stream's oldest; Fanout
 * deletes nothing), so everything after the channel's oldest retained message is retained. Below
 * that message, nothing of the channel was dropped when the subject never reached its limit
 * (after a drop by that limit it stays full until max_age removes older and older messages, which
 * moves the stream's first sequence past them) and the stream removed nothing after S (its first
 * sequence is at most S + 1). A position this cannot vouch for is reported not covered: clients
 * reload rather than miss a message.
 */
export function completeAfter(extent: ChannelExtent): number {
  const { first, count, perSubject, streamFirst } = extent;
  const belowFirst = first === undefined ? Infinity : first - 1;
  if (count < perSubject) return Math.min(belowFirst, streamFirst - 1);
  return belowFirst;
}

/** The server's duplicate window when a stream sets none (seconds). */
export const DEFAULT_DUPLICATE_WINDOW_S = 120;

/**
 * The stream's `duplicate_window` in ms: how long it remembers message ids (once-marks and
 * idempotency keys, OutgoingMessage). The longest idempotency window of the top level and the
 * namespaces, cut to --history-ttl when that is shorter (JetStream wants it within max_age).
 */
export function duplicateWindowMs(idempotencyWindow: number | undefined, historyTtl: number): number {
  const wanted = (idempotencyWindow ?? DEFAULT_DUPLICATE_WINDOW_S) * 1000;
  return historyTtl > 0 ? Math.min(wanted, historyTtl * 1000) : wanted;
}
