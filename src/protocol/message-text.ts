/**
 * The text layout of the `message` frame, shared by the server (message-frame.ts builds every
 * frame from these constants) and the SDK, which reads a whole message's `data` text back out of
 * the frame to keep it as the base of the next delta. Browser-safe: no Buffer, no imports.
 *
 *   whole: {"type":"message","channel":C,"offset":O,"epoch":"E","data":D}
 *   delta: {"type":"message","channel":C,"offset":O,"epoch":"E","encoding":"fossil","delta":"…"}
 *
 * A delta is a fossil delta (https://fossil-scm.org/home/doc/tip/www/delta_format.wiki) from the
 * UTF-8 bytes of the previous message's `data` text to this message's, carried as a JSON string:
 * its bytes are UTF-8 text (the server sends the message whole when they would not be).
 */

/** What follows the offset digits, before the epoch. */
export const EPOCH_OPEN = ',"epoch":"';
/** What follows the epoch, before the data. */
export const DATA_OPEN = '","data":';
/** What follows the data (or the delta). */
export const FRAME_CLOSE = '}';
/** The one delta encoding: the value of a delta frame's `encoding`. */
export const DELTA_ENCODING = 'fossil';
/** What follows the epoch in a delta frame, before the delta's JSON string. */
export const DELTA_OPEN = `","encoding":"${DELTA_ENCODING}","delta":`;

/**
 * The `data` JSON text of a whole `message` frame's text, exactly as the server sent it, or
 * undefined when the text is not laid out as above. The first `","data":` is the field: the
 * channel name (no quotes allowed) and the epoch (hex) that come before it cannot hold one.
 */
export function dataTextOf(frame: string): string | undefined {
  const at = frame.indexOf(DATA_OPEN);
  if (at < 0 || !frame.endsWith(FRAME_CLOSE)) return undefined;
  return frame.slice(at + DATA_OPEN.length, frame.length - FRAME_CLOSE.length);
}
