/**
 * The channel store over the Kafka log (log.ts): offsets are partition offsets, history is the
 * node's index of the log (log-index.ts), once-marks and idempotency keys are decided by the
 * log's order (once.ts, log.ts).
 */
import type { KafkaLog } from './log.js';
import { oneAtATime } from './once.js';
import { logReadResult } from '../../stores/page.js';
import type { ChannelStore, OutgoingMessage, PublishResult, ReadOptions, ReadResult } from '../../stores/store.js';

/** The channel store over a {@link KafkaLog}: offsets are partition offsets, history is the node's index of the log. */
export class KafkaChannelStore implements ChannelStore {
  readonly kind = 'kafka';

  constructor(
    private readonly log: KafkaLog,
    private readonly nodeId: string,
    /**
     * A channel's own ttl in seconds (its namespace's `history-ttl`), when channels differ. The
     * index ages records at the longest (config/namespaces.ts storedHistoryTtl); a channel whose
     * newest message is older than its own ttl is served as holding nothing (docs/brokers.md).
     */
    private readonly ttlOf?: (channel: string) => number,
  ) {}

  /** Per channel, the once-marked publish this node is making (the next one waits for it). */
  private readonly onceInFlight = new Map<string, Promise<unknown>>();

  /**
   * A message with `once` is checked and written as one step, across nodes, by the log itself:
   * the first record of a mark in the log's order is the message, and every node's reader drops a
   * later one ({@link KafkaLog.record}); the writer of a later one waits until it read its record
   * back and answers `duplicate`. So two nodes that both pass the check below (a rebalance during
   * a store outage hands one record to both) store it once; the loser's record stays in the Kafka
   * log only, unread. Before writing, the mark is checked against what this node has read up to
   * the partition's end, so a known repeat costs no write, and once-marked publishes of one
   * channel go one at a time on a node (the second finds the first's mark instead of writing).
   * The marks live as long as the channel's messages stay in the index (--history-ttl).
   */
  publish(message: OutgoingMessage): Promise<PublishResult> {
    return message.once ? oneAtATime(this.onceInFlight, message.channel, () => this.write(message)) : this.write(message);
  }

  private async write(message: OutgoingMessage): Promise<PublishResult> {
    const once = message.once;
    const partition = this.log.partitionOfTopic(message.topic);
    if (once) {
      await this.log.catchUp(partition);
      if (once.position <= this.log.index.mark(message.channel, once.source)) return this.duplicate(message.channel, partition);
    }
    const idempotency = message.idempotency;
    if (idempotency) {
      // What this node has read already answers a known repeat without a write; a repeat it has
      // not read yet is decided by the log's order when it reads its own record back (log.ts).
      const first = this.log.keysOf(partition).peek(message.channel, idempotency.key, Date.now());
      if (first) return { ...first, duplicate: true };
    }
    const position = await this.log.append(message.topic, message.data, this.nodeId, once, idempotency);
    if (position.duplicate && idempotency && !once) return { offset: position.offset, epoch: position.epoch, duplicate: true };
    if (position.duplicate) return this.duplicate(message.channel, partition);
    // What the channel keeps is told by the index as it reads the record (KafkaLogOptions.historySized):
    // the ack may come before this node read the channel's previous records, so a count here could be short.
    return { offset: position.offset, epoch: position.epoch, retained: null };
  }

  /** The answer to a once-marked message the channel already has: its position now, nothing written. */
  private duplicate(channel: string, partition: number): PublishResult {
    const offset = Math.max(this.log.index.view(channel, partition).messages.at(-1)?.offset ?? 0, this.log.position(partition));
    return { offset, epoch: this.log.epoch, duplicate: true };
  }

  async read(channel: string, options: ReadOptions = {}): Promise<ReadResult> {
    const topic = this.log.topicOf(channel);
    const partition = this.log.partitionOfTopic(topic);
    await this.log.catchUp(partition);
    // From here to the return, nothing else runs: the index, the position and the fence agree.
    const epoch = this.log.epoch;
    const view = this.log.index.view(channel, partition);
    const offset = Math.max(view.messages.at(-1)?.offset ?? 0, this.log.position(partition));
    if (options.fence) this.log.deliverLocal(options.fence.topic, options.fence.payload);
    const ttl = this.ttlOf?.(channel) ?? 0;
    const newest = view.messages.at(-1);
    if (newest && ttl > 0 && view.lastAt !== undefined && view.lastAt < Date.now() - ttl * 1000) {
      // Past the channel's own ttl: gone for readers; the index drops it at the longest ttl.
      return logReadResult([], { offset, epoch, complete: Math.max(view.completeAfter, newest.offset) }, options);
    }
    return logReadResult(view.messages, { offset, epoch, complete: view.completeAfter }, options);
  }

  async close(): Promise<void> {}
}
