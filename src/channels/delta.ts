/**
 * Delta compression of one channel on this node (namespace `delta: fossil`, docs/protocol.md).
 *
 * Which base each subscriber holds: a node sends a delta only against the previous message it
 * itself delivered live to that subscriber. Every live subscriber of a channel on a node gets
 * every message the node broadcasts, so all the delta subscribers that got the previous live
 * broadcast share one base, the node's {@link ChannelDelta.base}: they are {@link synced}. A
 * subscriber that just went live (first subscribe, resubscribe, recovery, with or without
 * `recovered`) got whole frames only (recovered and buffered ones), so it is {@link fresh}: its
 * next message is whole, and from then on it is synced. A gap drops the base, so the next message
 * is whole for everyone: the node catching up after a bus outage (it delivers missed messages
 * from history, whole), a message whose epoch differs from the previous one, or one whose bytes
 * are not laid out as the frame module says.
 *
 * Cost: the delta is computed once per node per message, and framed once; the whole frame too
 * (at most two framings per message per node), and only while the channel has a delta subscriber
 * on the node. Without one the broadcast path is the plain one (streams.ts).
 *
 * Encoder: `fossil-delta` (dchest's port of Fossil's own C code, the format Centrifugo uses; the
 * SDK decodes with its own implementation, client/fossil.ts, and a unit test checks one against
 * the other). A delta goes out only when it is smaller than the data and its bytes are UTF-8 text
 * (the frame carries it as a JSON string; an insert that split a multi-byte character would not
 * be): otherwise the message goes whole to everyone, and stays everyone's base.
 */
import { isUtf8 } from 'node:buffer';
import { createDelta } from 'fossil-delta';
import { frameText, type Outbox } from '../node/outbox.js';
import { deltaMessageBody } from '../protocol/message-frame.js';
import type { Client } from '../transport/client.js';

/** Where the parts of a channel message's payload body are (a MessageScanner's last scan). */
export interface ScannedMessage {
  /** Index of the epoch's closing quote. */
  readonly epochEnd: number;
  /** Index where the `data` JSON text starts; -1 when the body is not laid out so. */
  readonly dataAt: number;
}

export class ChannelDelta {
  /** The `data` text of the last message this node broadcast live on the channel; undefined after a gap. */
  private base: Buffer | undefined;
  /** Live delta subscribers that got {@link base}: the next message may reach them as a delta. */
  private readonly synced = new Set<Client>();
  /** Live delta subscribers that did not: the next message reaches them whole. */
  private readonly fresh = new Set<Client>();

  /** True while the channel has a live delta subscriber on this node. */
  get active(): boolean {
    return this.synced.size > 0 || this.fresh.size > 0;
  }

  /** A delta subscriber went live: its next message is whole. */
  add(client: Client): void {
    this.fresh.add(client);
  }

  remove(client: Client): void {
    this.synced.delete(client);
    this.fresh.delete(client);
    if (!this.active) this.base = undefined;
  }

  /** The node may have missed a message, or delivered some outside the live broadcast: the next message is whole for all. */
  gap(): void {
    this.base = undefined;
  }

  /**
   * Broadcasts one live message to `live`: its delta to the synced delta subscribers, the whole
   * frame (`whole()`, framed at most once by the caller) to everyone else. `continuous` is false
   * when the message's epoch is not the previous message's.
   */
  broadcast(outbox: Pick<Outbox, 'send' | 'broadcast'>, live: Iterable<Client>, body: Buffer, at: ScannedMessage, continuous: boolean, whole: () => Buffer): void {
    const data = at.dataAt < 0 ? undefined : body.subarray(at.dataAt, body.length - 1);
    const delta = continuous && data !== undefined && this.base !== undefined && this.synced.size > 0 ? deltaFrame(body, at.epochEnd, this.base, data) : undefined;
    if (delta === undefined) outbox.broadcast(live, whole());
    else for (const client of live) outbox.send(client, this.synced.has(client) ? delta : whole());
    for (const client of this.fresh) this.synced.add(client);
    this.fresh.clear();
    // A copy: the payload may be a view of a larger buffer the bus client read into.
    this.base = data === undefined ? undefined : Buffer.from(data);
  }
}

/** The framed delta message of `body` against `base`, or undefined when it would not pay or not be text. */
export function deltaFrame(body: Buffer, epochEnd: number, base: Buffer, data: Buffer): Buffer | undefined {
  const delta = createDelta(base, data);
  if (delta.length >= data.length || !isUtf8(delta)) return undefined;
  const text = Buffer.from(delta.buffer, delta.byteOffset, delta.length).toString('utf8');
  return frameText(deltaMessageBody(body, epochEnd, JSON.stringify(text)));
}
