/**
 * Delta compression (namespace `delta: fossil`, docs/protocol.md): the encoder checked against
 * the SDK's independent decoder, one delta per node per message shared by the subscribers that
 * hold the same base, whole messages after a gap, and the SDK giving the app whole data.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { WebSocket } from 'ws';
import { applyDelta, createDelta } from 'fossil-delta';
import type { MemoryBus } from '../../src/brokers/memory/bus.js';
import { ChannelDelta, type ScannedMessage } from '../../src/channels/delta.js';
import { FanoutClient, type WebSocketConstructor, type WebSocketLike } from '../../client/index.js';
import { applyFossilDelta, DeltaError, fossilChecksum } from '../../client/fossil.js';
import { MessageScanner, encodeMessage } from '../../src/protocol/message-frame.js';
import type { Client } from '../../src/transport/client.js';
import { frameText } from '../../src/node/outbox.js';
import { decode } from '../../src/protocol/decode.js';
import { connectChannels, frames, messagesOf, publish, request, waitMessages, type Frame } from '../helpers/channels.js';
import { closeNodes, startNodes, wsUrl } from '../helpers/nodes.js';
import { collect } from '../helpers/sdk.js';
import { appliedData, doc, text, utf8 } from '../helpers/delta.js';
import { closeAll } from '../helpers/ws-client.js';
import { until } from '../../harness/wait.js';


// ------------------------------------------------------------------ fossil: two implementations

test('deltas made by fossil-delta are applied by the SDK\'s own decoder to the same bytes fossil-delta gives back', () => {
  let seed = 7;
  const random = (n: number): number => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  const pieces = ['{"a":1}', 'élan', '€', '日本', 'x'.repeat(40), '"quoted \\" text"', '\n', '😀', '0123456789'];
  for (let round = 0; round < 300; round++) {
    const parts: string[] = [];
    for (let i = 0; i < 5 + random(60); i++) parts.push(pieces[random(pieces.length)]!);
    const source = parts.join('');
    for (let edits = random(4); edits >= 0; edits--) parts.splice(random(parts.length + 1), random(2), pieces[random(pieces.length)]!);
    const target = utf8(parts.join(''));
    const delta = createDelta(utf8(source), target);
    assert.deepEqual(applyFossilDelta(utf8(source), delta), target, `round ${round}`);
    assert.deepEqual(applyDelta(utf8(source), delta), target);
  }
});

test('the SDK\'s decoder reads a delta written by hand from the format\'s description, as fossil-delta does', () => {
  const source = utf8('abcdefghijklmnopqrstuvwxyz');
  const target = utf8('abcdefXYZqrstuvwxyz');
  // 19 bytes: copy 6 from 0, insert 3, copy 10 from 16 ("qrstuvwxyz"), then the checksum. "J" is 19.
  const body = `J\n6@0,3:XYZA@G,`;
  const checksum = fossilChecksum(target);
  const digits = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz~';
  let n = checksum;
  let encoded = '';
  do {
    encoded = digits[n % 64] + encoded;
    n = Math.floor(n / 64);
  } while (n > 0);
  const delta = utf8(`${body}${encoded};`);
  assert.equal(text(applyFossilDelta(source, delta)), 'abcdefXYZqrstuvwxyz');
  // fossil-delta verifies the checksum too: the two agree on it.
  assert.equal(text(applyDelta(source, delta, { verifyChecksum: true })), 'abcdefXYZqrstuvwxyz');
  assert.throws(() => applyFossilDelta(utf8('ABCDEFghijklmnopqrstuvwxyz'), delta), DeltaError, 'another source fails the checksum');
  assert.throws(() => applyFossilDelta(source, utf8('J\n6@0,')), DeltaError);
});

test('a subscribe asks for deltas with "delta":true; anything but a boolean is a bad request', () => {
  assert.deepEqual(decode('{"type":"subscribe","channel":"doc:1","delta":true}'), { ok: true, frame: { type: 'subscribe', channel: 'doc:1', delta: true } });
  assert.deepEqual(decode('{"type":"subscribe","channel":"doc:1","delta":false}'), { ok: true, frame: { type: 'subscribe', channel: 'doc:1' } });
  const bad = decode('{"type":"subscribe","channel":"doc:1","delta":"fossil","id":4}');
  assert.equal(bad.ok, false);
  assert.deepEqual(bad.ok ? undefined : [bad.code, bad.message, bad.id], ['bad_request', '"delta" must be true or false', 4]);
});

// ------------------------------------------------------------------ one delta per node per message

test('a message is framed at most twice on a node: one delta shared by the synced subscribers, one whole frame for the rest', () => {
  const delta = new ChannelDelta();
  const [a, b, plain, late] = [{ id: 'a' }, { id: 'b' }, { id: 'plain' }, { id: 'late' }] as unknown as Client[];
  const sent = new Map<Client, Buffer[]>();
  const outbox = {
    send: (client: Client, frame: Buffer) => sent.set(client, [...(sent.get(client) ?? []), frame]),
    broadcast(clients: Iterable<Client>, frame: Buffer) {
      for (const client of clients) this.send(client, frame);
    },
  };
  const scanner = new MessageScanner('doc:1');
  let wholeFramings = 0;
  const deliver = (offset: number, live: Client[], epoch = 'e1'): void => {
    const body = Buffer.from(encodeMessage('doc:1', offset, epoch, JSON.stringify(doc(offset))));
    const before = scanner.epoch;
    assert.ok(scanner.scan(body));
    let whole: Buffer | undefined;
    delta.broadcast(outbox, live, body, scanner as ScannedMessage, before === undefined || before === scanner.epoch, () => {
      if (!whole) wholeFramings++;
      return (whole ??= frameText(body));
    });
  };
  // The frames are WebSocket frames (server to client, unmasked): the payload follows a 2, 4 or 10 byte header.
  const payload = (frame: Buffer): string => frame.subarray(frame[1]! < 126 ? 2 : frame[1] === 126 ? 4 : 10).toString();
  const kind = (frame: Buffer): string => ('delta' in (JSON.parse(payload(frame)) as Frame) ? 'delta' : 'whole');
  delta.add(a);
  delta.add(b);
  deliver(1, [a, b, plain]);
  assert.deepEqual([a, b, plain].map((c) => kind(sent.get(c)![0]!)), ['whole', 'whole', 'whole'], 'the first message goes whole');
  deliver(2, [a, b, plain]);
  const [toA, toB, toPlain] = [a, b, plain].map((c) => sent.get(c)![1]!);
  assert.equal(kind(toA!), 'delta');
  assert.equal(toA, toB, 'the synced subscribers share one delta frame (the same bytes)');
  assert.equal(kind(toPlain!), 'whole');
  assert.ok(toA!.length * 5 < toPlain!.length, `the delta (${toA!.length} B) is far smaller than the whole frame (${toPlain!.length} B)`);
  assert.equal(wholeFramings, 2, 'one whole framing per message');
  delta.add(late);
  deliver(3, [a, b, plain, late]);
  assert.deepEqual([a, b, plain, late].map((c) => kind(sent.get(c)!.at(-1)!)), ['delta', 'delta', 'whole', 'whole'], 'a newly live subscriber gets its first message whole');
  deliver(4, [a, b, late]);
  assert.equal(kind(sent.get(late)!.at(-1)!), 'delta', 'then deltas');
  assert.equal(wholeFramings, 3, 'no whole framing when every subscriber takes the delta');
  delta.gap();
  deliver(5, [a, b, late]);
  assert.deepEqual([a, b, late].map((c) => kind(sent.get(c)!.at(-1)!)), ['whole', 'whole', 'whole'], 'after a gap, whole');
  deliver(6, [a, b, late], 'e2');
  assert.deepEqual([a, b, late].map((c) => kind(sent.get(c)!.at(-1)!)), ['whole', 'whole', 'whole'], 'a new epoch is a gap');
  deliver(7, [a, b, late], 'e2');
  assert.equal(kind(sent.get(a)!.at(-1)!), 'delta');
});

// ------------------------------------------------------------------ through nodes

const DELTA_NS = { namespaces: [{ pattern: 'doc:*', delta: 'fossil' as const }] };

test('through two nodes: delta subscribers get the first message whole, then deltas that give the published data; others get whole messages', async () => {
  const [a, b] = await startNodes(2, DELTA_NS);
  const p = await connectChannels(a!);
  const d1 = await connectChannels(b!);
  const d2 = await connectChannels(a!);
  const plain = await connectChannels(b!);
  try {
    for (const c of [d1, d2]) assert.equal((await request(c, { type: 'subscribe', channel: 'doc:1', delta: true })).delta, true);
    assert.equal((await request(plain, { type: 'subscribe', channel: 'doc:1' })).delta, undefined);
    const other = await request(d1, { type: 'subscribe', channel: 'misc', delta: true });
    assert.equal(other.delta, undefined, 'a channel without delta: fossil answers without delta');
    for (let i = 1; i <= 4; i++) await publish(p, 'doc:1', doc(i));
    await publish(p, 'misc', doc(1));
    await publish(p, 'misc', doc(2));
    for (const c of [d1, d2, plain]) await waitMessages(c, 'doc:1', 4);
    await waitMessages(d1, 'misc', 2);
    for (const c of [d1, d2]) {
      const got = appliedData(c, 'doc:1');
      assert.deepEqual(got.map((m) => m.kind), ['whole', 'delta', 'delta', 'delta']);
      assert.deepEqual(got.map((m) => m.data), [1, 2, 3, 4].map((i) => doc(i)));
    }
    assert.deepEqual(appliedData(plain, 'doc:1').map((m) => m.kind), ['whole', 'whole', 'whole', 'whole']);
    assert.deepEqual(appliedData(d1, 'misc').map((m) => m.kind), ['whole', 'whole']);
    // A subscriber that joins later gets whole first; the others keep their deltas.
    const late = await connectChannels(b!);
    await request(late, { type: 'subscribe', channel: 'doc:1', delta: true });
    await publish(p, 'doc:1', doc(5));
    await publish(p, 'doc:1', doc(6));
    await waitMessages(late, 'doc:1', 2);
    await waitMessages(d1, 'doc:1', 6);
    assert.deepEqual(appliedData(late, 'doc:1').map((m) => [m.kind, m.data]), [['whole', doc(5)], ['delta', doc(6)]]);
    assert.deepEqual(appliedData(d1, 'doc:1').map((m) => m.kind).slice(4), ['delta', 'delta']);
    late.close();
  } finally {
    closeAll([p, d1, d2, plain]);
    await closeNodes([a!, b!]);
  }
});

test('after a gap the next message is whole: a bus outage the node caught up on, and a recovery with since', async () => {
  const [a, b] = await startNodes(2, DELTA_NS);
  const p = await connectChannels(a!);
  const d = await connectChannels(b!);
  try {
    await request(d, { type: 'subscribe', channel: 'doc:2', delta: true });
    for (let i = 1; i <= 2; i++) await publish(p, 'doc:2', doc(i));
    await waitMessages(d, 'doc:2', 2);
    (b!.bus as MemoryBus).disconnect();
    for (let i = 3; i <= 4; i++) await publish(p, 'doc:2', doc(i));
    (b!.bus as MemoryBus).reconnect();
    await waitMessages(d, 'doc:2', 4);
    for (let i = 5; i <= 6; i++) await publish(p, 'doc:2', doc(i));
    await waitMessages(d, 'doc:2', 6);
    const got = appliedData(d, 'doc:2');
    assert.deepEqual(got.map((m) => m.data), [1, 2, 3, 4, 5, 6].map((i) => doc(i)));
    assert.deepEqual(got.map((m) => m.kind), ['whole', 'delta', 'whole', 'whole', 'whole', 'delta'], 'missed messages and the next live one are whole');
    const since = { offset: 4, epoch: messagesOf(d, 'doc:2')[0]!.epoch as string };
    const back = await connectChannels(b!);
    const reply = await request(back, { type: 'subscribe', channel: 'doc:2', delta: true, since });
    assert.equal(reply.recovered, true);
    await publish(p, 'doc:2', doc(7));
    await publish(p, 'doc:2', doc(8));
    await waitMessages(back, 'doc:2', 4);
    assert.deepEqual(appliedData(back, 'doc:2').map((m) => [m.offset, m.kind]), [[5, 'whole'], [6, 'whole'], [7, 'whole'], [8, 'delta']], 'recovered messages are whole, and so is the first live one');
    assert.ok(frames(back).every((f) => f.type !== 'error'));
    back.close();
  } finally {
    closeAll([p, d]);
    await closeNodes([a!, b!]);
  }
});

test('the SDK asks for deltas with { delta: true }, applies them, and the app sees whole data', async () => {
  const [a, b] = await startNodes(2, DELTA_NS);
  const p = await connectChannels(a!);
  const seen: string[] = [];
  class Recording extends WebSocket {
    constructor(url: string) {
      super(url);
      this.on('message', (data) => seen.push(String(data)));
    }
  }
  const client = new FanoutClient({ url: wsUrl(b!, '/ws/v1'), WebSocket: Recording as unknown as WebSocketConstructor });
  try {
    await client.connect();
    const sub = client.subscribe('doc:sdk', { delta: true });
    const got = collect(sub);
    await sub.ready;
    const docs = [1, 2, 3, 4, 5].map((i) => doc(i, i === 4 ? 'naïve — 日本' : ''));
    for (const d of docs) await publish(p, 'doc:sdk', d);
    await until(() => got.length === docs.length, { what: 'five messages in the SDK' });
    assert.deepEqual(got.map((m) => m.data), docs);
    assert.ok(seen.some((m) => m.includes('"delta":"')), 'the server sent deltas');
  } finally {
    client.close();
    p.close();
    await closeNodes([a!, b!]);
  }
});

test('an SDK that misses a message reports the delta it cannot apply, resubscribes from its position and still delivers every document whole', async () => {
  const [a] = await startNodes(1, DELTA_NS);
  const p = await connectChannels(a!);
  let dropped = 0;
  // Loses the third message frame of the channel on the way in, as a broken proxy might.
  class Lossy implements WebSocketLike {
    onopen: ((event: unknown) => void) | null = null;
    onmessage: ((event: { readonly data: unknown }) => void) | null = null;
    onclose: ((event: { readonly code: number; readonly reason: string }) => void) | null = null;
    onerror: ((event: unknown) => void) | null = null;
    private readonly ws: WebSocket;
    private frames = 0;
    constructor(url: string) {
      this.ws = new WebSocket(url);
      this.ws.onopen = (event) => this.onopen?.(event);
      this.ws.onclose = (event) => this.onclose?.(event);
      this.ws.onerror = (event) => this.onerror?.(event);
      this.ws.onmessage = (event) => {
        if (String(event.data).includes('"type":"message"') && ++this.frames === 3) dropped++;
        else this.onmessage?.({ data: String(event.data) });
      };
    }
    get readyState(): number {
      return this.ws.readyState;
    }
    send(data: string): void {
      this.ws.send(data);
    }
    close(code?: number, reason?: string): void {
      this.ws.close(code, reason);
    }
  }
  const client = new FanoutClient({ url: wsUrl(a!, '/ws/v1'), WebSocket: Lossy as unknown as WebSocketConstructor });
  try {
    await client.connect();
    const sub = client.subscribe('doc:lossy', {}, { delta: true });
    const got = collect(sub);
    const errors: string[] = [];
    sub.on('error', (err) => errors.push(`${err.code}: ${err.message}`));
    await sub.ready;
    const docs = [1, 2, 3, 4, 5, 6].map((i) => doc(i));
    for (const d of docs) await publish(p, 'doc:lossy', d);
    await until(() => got.length === docs.length, { what: 'six documents in the SDK', detail: () => `${got.length} so far; errors ${errors.join('; ')}` });
    assert.equal(dropped, 1);
    assert.deepEqual(got.map((m) => m.data), docs, 'every document, in order, whole');
    assert.equal(errors.length, 1);
    assert.match(errors[0]!, /^bad_frame: could not apply the delta of offset 4 on "doc:lossy" \(delta: [^)]*\); resubscribing from the last message$/);
  } finally {
    client.close();
    p.close();
    await closeNodes([a!]);
  }
});
