/** Helpers for delta compression tests: documents that change one field at a time, and a client's view of a delta stream. */
import assert from 'node:assert/strict';
import { applyFossilDelta } from '../../client/fossil.js';
import { dataTextOf } from '../../src/protocol/message-text.js';
import type { Frame } from './channels.js';
import type { TestClient } from './ws-client.js';

export const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text);
export const text = (bytes: Uint8Array): string => new TextDecoder().decode(bytes);

/** A ~2 KB JSON document whose `n`th version differs from the previous in one field. */
export function doc(n: number, extra = ''): Record<string, unknown> {
  const items: Record<string, string> = {};
  for (let i = 0; i < 40; i++) items[`item${i}`] = `value ${i} of the document ${extra}`;
  return { id: 'doc-1', version: n, price: 100 + (n % 7) * 0.25, items };
}

/** Every message `client` got on `channel` as whole data, applying deltas as a client must: against the previous message it got. */
export function appliedData(client: TestClient, channel: string): Array<{ offset: number; kind: string; data: unknown }> {
  let base: Uint8Array | undefined;
  const raw = client.messages.filter((m) => m.includes('"type":"message"') && (JSON.parse(m) as Frame).channel === channel);
  return raw.map((m) => {
    const frame = JSON.parse(m) as Frame;
    if (typeof frame.delta === 'string') {
      assert.equal(frame.encoding, 'fossil');
      assert.equal('data' in frame, false, 'a delta frame carries no data');
      base = applyFossilDelta(base!, utf8(frame.delta));
      return { offset: frame.offset as number, kind: 'delta', data: JSON.parse(text(base)) };
    }
    base = utf8(dataTextOf(m)!);
    return { offset: frame.offset as number, kind: 'whole', data: frame.data };
  });
}

