/**
 * ws's frame encoder and parser. ws exports both, but its type definitions leave them out;
 * this is the one place that types them.
 */
import type { EventEmitter } from 'node:events';
import { createRequire } from 'node:module';
import type { Writable } from 'node:stream';

interface FrameOptions {
  fin: boolean;
  rsv1: boolean;
  opcode: number;
  mask: boolean;
  readOnly: boolean;
}

interface SenderStatic {
  /** Encodes one frame: [header, payload] or [frame]. */
  frame(data: Buffer, options: FrameOptions): Buffer[];
}

type ReceiverInstance = Writable & EventEmitter;
interface ReceiverStatic {
  new (options: { isServer?: boolean; maxPayload?: number; skipUTF8Validation?: boolean }): ReceiverInstance;
}

const ws = createRequire(import.meta.url)('ws') as { Sender: SenderStatic; Receiver: ReceiverStatic };

export const Sender: SenderStatic = ws.Sender;
export const Receiver: ReceiverStatic = ws.Receiver;
