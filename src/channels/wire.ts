/** Frame texts of the channel protocol that the channel layer builds from stored JSON text. */
import { EPOCH_OPEN, payloadTail, type ReadResult } from '../history/store.js';

/** A `message` frame's JSON: the same bytes the bus carries after the envelope (see store.ts). */
export function messageJson(channel: string, offset: number, epoch: string, data: string): string {
  return `{"type":"message","channel":${JSON.stringify(channel)},"offset":${offset}${EPOCH_OPEN}${epoch}${payloadTail(data)}`;
}

/** A `history` frame's (or HTTP body's) `messages` array; `data` is spliced in as stored JSON text. */
export function messagesJson(messages: ReadResult['messages']): string {
  return `[${messages.map((m) => `{"offset":${m.offset},"data":${m.data}}`).join(',')}]`;
}
