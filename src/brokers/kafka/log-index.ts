/**
 * Channel history on Kafka, as each node holds it: an index of the channel records of the Kafka
 * log, fed by the node's own consumer, in the log's order (brokers/kafka/log.ts). Pure: no client,
 * no clock of its own (times come in), so the unit tests drive it record by record.
 *
 * What it knows. Per partition, a **window**: every channel record of the partition from offset
 * `floor` on went through {@link KafkaIndex.append}. The floor starts where the node began to
 * read (the first record younger than --history-ttl, or the log's start), and moves up when
 * records age past --history-ttl or when the consumer skipped records (the log no longer had
 * them). Per channel, the last --history-size messages in the window.
 *
 * The recovery rule follows: every message of a channel after position S is in the index exactly
 * when S is at least {@link ChannelEntry.completeAfter}, the larger of `floor - 1` and the offset
 * of the newest message the channel dropped for --history-size.
 *
 * Bounds. A channel is kept only while it holds a message (or a once-mark), so names that hold
 * nothing cost nothing. The messages held are capped at --history-max-bytes (data plus a fixed
 * cost per message and per channel): past it, the least recently written channels are dropped
 * whole. A dropped channel leaves no entry, so the partition remembers the newest offset it ever
 * dropped this way (`forgotten`): every channel of the partition vouches only for what comes after
 * it, and a recovery across an eviction says `recovered:false`, never a silently short answer.
 * (A channel that was never dropped may then say `false` for a position older than `forgotten`:
 * the price of keeping nothing per dropped name.)
 */
import type { OutgoingMessage, StoredMessage } from '../../stores/store.js';

interface ChannelEntry {
  readonly partition: number;
  /** Oldest first, at most historySize. */
  readonly messages: StoredMessage[];
  /** Offset of the newest message dropped for the size limit; -1 when none was. */
  dropped: number;
  /** {@link OutgoingMessage.once} marks of the channel's messages: per source, the highest position. */
  marks?: Map<string, number>;
  /** What the entry counts towards the byte cap. */
  bytes: number;
  /** When its newest message was written (the record's time, ms), for a channel's own shorter ttl. */
  lastAt: number;
}

interface PartitionWindow {
  /** Every channel record from this offset on is indexed. */
  floor: number;
  /** Channel records of the window with their times, oldest first, while --history-ttl ages them out. */
  readonly times: Array<readonly [offset: number, time: number]>;
  /** Index of the first live entry of `times` (the array is compacted now and then). */
  head: number;
  /** Channels with messages in this partition. */
  readonly channels: Set<string>;
  /** The newest offset of a message dropped with no entry left to say so (evicted for the byte cap, or --history-size 0); -1 for none. */
  forgotten: number;
}

export interface KafkaIndexOptions {
  /** Messages kept per channel (--history-size). */
  readonly historySize: number;
  /** Seconds a message stays (--history-ttl); 0 keeps messages until the size limit drops them. */
  readonly historyTtl: number;
  /** --history-max-bytes: what the index may hold, data and bookkeeping; 0 for no cap. Default {@link DEFAULT_HISTORY_MAX_BYTES}. */
  readonly historyMaxBytes?: number;
  /** Told of each channel dropped whole for the byte cap (the node counts it in `fanout_history_evictions_total`). */
  readonly evicted?: (channel: string) => void;
  /** Told how many messages a channel holds after each of its records is read (the node's `fanout_history_messages`). */
  readonly sized?: (channel: string, messages: number) => void;
}

/** The byte cap when none is given (the memory store's --history-max-bytes default). */
export const DEFAULT_HISTORY_MAX_BYTES = 256 * 1024 * 1024;
/** What a held message costs beyond its data (object, array slot, offset), and a channel entry beyond its name. */
const MESSAGE_COST = 64;
const CHANNEL_COST = 256;

/** What a channel's history looks like now, for a read. */
export interface ChannelView {
  /** Oldest first. */
  readonly messages: readonly StoredMessage[];
  /** Every message of the channel after this offset is in `messages`. */
  readonly completeAfter: number;
  /** When the channel's newest message was written (ms); undefined when the index holds none of it. */
  readonly lastAt?: number;
}

export class KafkaIndex {
  /** Least recently written first (an append moves its channel to the end). */
  private readonly channels = new Map<string, ChannelEntry>();
  private readonly partitions = new Map<number, PartitionWindow>();
  private readonly maxBytes: number;
  private heldBytes = 0;
  /** Channels dropped whole for the byte cap, since the start. */
  evictions = 0;

  constructor(private readonly options: KafkaIndexOptions) {
    this.maxBytes = options.historyMaxBytes ?? DEFAULT_HISTORY_MAX_BYTES;
  }

  /** What the index holds now, in the cap's bytes. */
  get bytes(): number {
    return this.heldBytes;
  }

  /** Starts (or restarts, forgetting what it held) partition `partition`'s window at `floor`. */
  open(partition: number, floor: number): void {
    this.drop(partition);
    this.partitions.set(partition, { floor, times: [], head: 0, channels: new Set(), forgotten: -1 });
  }

  /** Forgets everything: the log is another one (a new epoch). */
  clear(): void {
    this.channels.clear();
    this.partitions.clear();
    this.heldBytes = 0;
  }

  /** The consumer jumped to `offset` on `partition` (records before it are not in the log any more). */
  skipTo(partition: number, offset: number): void {
    const window = this.partitions.get(partition);
    if (!window) return this.open(partition, offset);
    if (offset > window.floor) this.raise(window, offset);
  }

  /** A channel record of the log, in the log's order per partition; `mark` is its {@link OutgoingMessage.once} when it had one. */
  append(partition: number, offset: number, time: number, channel: string, data: string, mark?: OutgoingMessage['once']): void {
    let window = this.partitions.get(partition);
    if (!window) {
      window = { floor: offset, times: [], head: 0, channels: new Set(), forgotten: -1 };
      this.partitions.set(partition, window);
    }
    let entry = this.channels.get(channel);
    if (entry && entry.partition !== partition) {
      this.forget(channel, entry);
      entry = undefined;
    }
    const size = this.options.historySize;
    if (!entry) {
      // Nothing to hold and no mark to keep: the drop is the partition's to remember, not a name's.
      if (size <= 0 && !mark) {
        window.forgotten = Math.max(window.forgotten, offset);
        return;
      }
      entry = { partition, messages: [], dropped: window.forgotten, bytes: CHANNEL_COST + channel.length * 2, lastAt: time };
      this.heldBytes += entry.bytes;
    } else {
      // Most recently written goes last: the byte cap evicts from the front.
      this.channels.delete(channel);
    }
    this.channels.set(channel, entry);
    entry.lastAt = time;
    if (size > 0) {
      const cost = MESSAGE_COST + data.length * 2;
      entry.messages.push({ offset, data });
      entry.bytes += cost;
      this.heldBytes += cost;
      if (entry.messages.length > size) {
        const gone = entry.messages.splice(0, entry.messages.length - size);
        entry.dropped = gone.at(-1)!.offset;
        this.release(entry, gone);
      }
    } else {
      entry.dropped = offset;
    }
    if (mark && mark.position > (entry.marks?.get(mark.source) ?? -1)) (entry.marks ??= new Map()).set(mark.source, mark.position);
    window.channels.add(channel);
    if (this.options.historyTtl > 0) window.times.push([offset, time]);
    this.enforceCap(channel);
    this.options.sized?.(channel, entry.messages.length);
  }

  /** Drops the least recently written channels (never `keep`, the one just written) until the index is within the byte cap. */
  private enforceCap(keep: string): void {
    if (this.maxBytes <= 0) return;
    for (const [channel, entry] of this.channels) {
      if (this.heldBytes <= this.maxBytes) return;
      if (channel === keep) continue;
      this.forget(channel, entry);
      this.evictions++;
      this.options.evicted?.(channel);
    }
  }

  /** Removes a channel's entry; the partition remembers its newest offset as dropped. */
  private forget(channel: string, entry: ChannelEntry): void {
    const window = this.partitions.get(entry.partition);
    if (window) {
      window.forgotten = Math.max(window.forgotten, entry.messages.at(-1)?.offset ?? entry.dropped);
      window.channels.delete(channel);
    }
    this.heldBytes -= entry.bytes;
    this.channels.delete(channel);
  }

  /** Takes `gone` (messages an entry no longer holds) off the byte count. */
  private release(entry: ChannelEntry, gone: readonly StoredMessage[]): void {
    let freed = 0;
    for (const m of gone) freed += MESSAGE_COST + m.data.length * 2;
    entry.bytes -= freed;
    this.heldBytes -= freed;
  }

  /**
   * The highest {@link OutgoingMessage.once} position of `source` among the channel's messages
   * the index holds (-1 for none); kept as long as the channel has messages in the window.
   */
  mark(channel: string, source: string): number {
    return this.channels.get(channel)?.marks?.get(source) ?? -1;
  }

  /** Drops what aged past --history-ttl at `now` (ms). Cost: the records that leave, plus one pass over each partition's channels when any did. */
  expire(now: number): void {
    if (this.options.historyTtl <= 0) return;
    const oldest = now - this.options.historyTtl * 1000;
    for (const window of this.partitions.values()) {
      let i = window.head;
      while (i < window.times.length && window.times[i]![1] < oldest) i++;
      if (i === window.head) continue;
      const floor = window.times[i - 1]![0] + 1;
      window.head = i;
      if (window.head > 1024 && window.head * 2 > window.times.length) {
        window.times.splice(0, window.head);
        window.head = 0;
      }
      this.raise(window, floor);
    }
  }

  /** The channel's history, on the partition it lives on. */
  view(channel: string, partition: number): ChannelView {
    const window = this.partitions.get(partition);
    const floor = window?.floor ?? Infinity;
    const entry = this.channels.get(channel);
    if (!entry || entry.partition !== partition) return { messages: [], completeAfter: Math.max(floor - 1, window?.forgotten ?? -1) };
    return { messages: entry.messages, completeAfter: Math.max(floor - 1, entry.dropped), lastAt: entry.lastAt };
  }

  /** How many channels have messages (for tests and metrics). */
  get size(): number {
    return this.channels.size;
  }

  /** Moves the window's floor up to `floor`, dropping the channels' messages below it. */
  private raise(window: PartitionWindow, floor: number): void {
    window.floor = floor;
    while (window.head < window.times.length && window.times[window.head]![0] < floor) window.head++;
    for (const channel of window.channels) {
      const entry = this.channels.get(channel);
      if (!entry) {
        window.channels.delete(channel);
        continue;
      }
      let n = 0;
      while (n < entry.messages.length && entry.messages[n]!.offset < floor) n++;
      if (n > 0) this.release(entry, entry.messages.splice(0, n));
      if (entry.messages.length === 0) {
        // Nothing left to serve: the floor vouches for the channel from here on.
        this.heldBytes -= entry.bytes;
        this.channels.delete(channel);
        window.channels.delete(channel);
      }
    }
  }

  private drop(partition: number): void {
    const window = this.partitions.get(partition);
    if (!window) return;
    for (const channel of window.channels) {
      const entry = this.channels.get(channel);
      if (entry?.partition !== partition) continue;
      this.heldBytes -= entry.bytes;
      this.channels.delete(channel);
    }
    this.partitions.delete(partition);
  }
}
