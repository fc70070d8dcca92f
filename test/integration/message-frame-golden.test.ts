// Golden test of the `message` frame: the payload the memory store hands to the bus and the one
// the Redis publish script PUBLISHes (a real Redis) are the same frame bytes, each parses as
// exactly a MessageFrame, and the scanner reads the same offset and epoch from both.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { Redis } from 'ioredis';
import { MemoryChannelStore } from '../../src/brokers/memory/stores.js';
import { RedisChannelStore, withScripts } from '../../src/brokers/redis/stores.js';
import type { ChannelPosition, ChannelStore } from '../../src/stores/store.js';
import { decodeEnvelope, EnvelopeKind } from '../../src/protocol/envelope.js';
import { encodeHistory } from '../../src/protocol/encode.js';
import type { HistoryFrame, Json, MessageFrame } from '../../src/protocol/frames.js';
import { encodeMessage, MessageScanner } from '../../src/protocol/message-frame.js';
import { REDIS_URL } from '../helpers/brokers.js';

/** Names JSON writes as they are but other encoders escape (`/`), and the rest of the allowed set. */
const CHANNELS = ['a/b=c+d@e', 'plain', 'x:y.z_-1'];
const DATA: Json[] = [
  { a: { b: [1, 2.5, { c: null, d: [true, false] }] }, e: '' },
  'héllo ☃ 🎉 \u2028 \u0000 "quoted" \\ back',
  { 'kéy with "quotes"': ['ü', { '🎉': -0.001 }] },
  [],
  null,
  123456789012,
];

const prefix = `golden-${randomBytes(4).toString('hex')}`;
let commands: Redis;
let listener: Redis;
let redisStore: RedisChannelStore;
let memoryStore: MemoryChannelStore;
/** Payloads the memory store delivered, by topic. */
const delivered = new Map<string, Buffer[]>();
/** Payloads Redis pushed to the listener, by topic, and who waits for the next. */
const published = new Map<string, Buffer[]>();
const waiters = new Map<string, (payload: Buffer) => void>();

before(async () => {
  commands = new Redis(REDIS_URL);
  listener = new Redis(REDIS_URL);
  listener.on('messageBuffer', (topic: Buffer, payload: Buffer) => {
    const name = topic.toString();
    const waiter = waiters.get(name);
    if (waiter) {
      waiters.delete(name);
      waiter(payload);
    } else published.set(name, [...(published.get(name) ?? []), payload]);
  });
  await listener.subscribe(...CHANNELS.map((c) => topicOf('redis', c)));
  redisStore = new RedisChannelStore(withScripts(commands), { prefix, historySize: 50, historyTtl: 60 });
  memoryStore = new MemoryChannelStore(
    {},
    {
      historySize: 50,
      historyTtl: 60,
      historyMaxBytes: 0,
      connected: () => true,
      deliver: (topic, payload) => delivered.set(topic, [...(delivered.get(topic) ?? []), payload]),
    },
  );
});

after(async () => {
  const keys = await commands.keys(`${prefix}:*`);
  if (keys.length) await commands.del(...keys);
  await listener.quit();
  await commands.quit();
});

function topicOf(store: 'memory' | 'redis', channel: string): string {
  return `${prefix}:${store}:ch:${channel}`;
}

/** The next payload Redis publishes on `topic`. */
function nextPublished(topic: string): Promise<Buffer> {
  const queued = published.get(topic)?.shift();
  if (queued) return Promise.resolve(queued);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`nothing published on ${topic}`)), 5000);
    waiters.set(topic, (payload) => {
      clearTimeout(timer);
      resolve(payload);
    });
  });
}

/** Publishes `data` through `store` as the channel service does; the store builds the payload (origin '' here). */
function publish(store: ChannelStore, kind: 'memory' | 'redis', channel: string, data: Json): Promise<ChannelPosition> {
  return store.publish({ channel, topic: topicOf(kind, channel), origin: '', data: JSON.stringify(data) });
}

/** Checks one payload as a client would see its body, and returns what the scanner reads from it. */
function checkPayload(payload: Buffer, channel: string, position: ChannelPosition, data: Json, what: string): [number, string | undefined] {
  const envelope = decodeEnvelope(payload);
  assert.ok(envelope, `${what}: an envelope`);
  assert.equal(envelope.kind, EnvelopeKind.CHANNEL, what);
  assert.equal(envelope.origin, '', `${what}: store payloads carry no origin`);
  const parsed = JSON.parse(envelope.body.toString('utf8')) as Record<string, unknown>;
  assert.deepEqual(Object.keys(parsed), ['type', 'channel', 'offset', 'epoch', 'data'], `${what}: the frame's keys, in order, no others`);
  const expected: MessageFrame = { type: 'message', channel, offset: position.offset, epoch: position.epoch, data };
  assert.deepEqual(parsed, expected, what);
  assert.equal(envelope.body.toString('utf8'), encodeMessage(channel, position.offset, position.epoch, JSON.stringify(data)), `${what}: the one layout, byte for byte`);
  const scanner = new MessageScanner(channel);
  assert.equal(scanner.scan(envelope.body), true, `${what}: scannable`);
  return [scanner.offset, scanner.epoch];
}

test('the memory store and the Redis script publish the same message frame, the scanner reads it back, history returns its data', async () => {
  for (const channel of CHANNELS) {
    for (const [i, data] of DATA.entries()) {
      const memoryPosition = await publish(memoryStore, 'memory', channel, data);
      const memoryPayload = delivered.get(topicOf('memory', channel))!.at(-1)!;
      const redisNext = nextPublished(topicOf('redis', channel));
      const redisPosition = await publish(redisStore, 'redis', channel, data);
      const redisPayload = await redisNext;

      assert.equal(memoryPosition.offset, i + 1);
      assert.equal(redisPosition.offset, i + 1);
      const fromMemory = checkPayload(memoryPayload, channel, memoryPosition, data, `memory ${channel} #${i + 1}`);
      const fromRedis = checkPayload(redisPayload, channel, redisPosition, data, `redis ${channel} #${i + 1}`);
      assert.deepEqual(fromMemory, [memoryPosition.offset, memoryPosition.epoch]);
      assert.deepEqual(fromRedis, [redisPosition.offset, redisPosition.epoch]);
      // The stores' epochs are their own random ids; with them swapped in, the bodies are the same bytes.
      const memoryBody = decodeEnvelope(memoryPayload)!.body.toString('utf8');
      const redisBody = decodeEnvelope(redisPayload)!.body.toString('utf8');
      assert.equal(redisBody.replace(redisPosition.epoch, memoryPosition.epoch), memoryBody);
    }
  }

  // What both stores retained comes back in a history frame as the data published.
  for (const store of [memoryStore, redisStore]) {
    for (const channel of CHANNELS) {
      const result = await store.read(channel, { limit: DATA.length });
      const frame = JSON.parse(encodeHistory({ type: 'history', channel, epoch: result.epoch, offset: result.offset }, result.messages)) as HistoryFrame;
      const expected: HistoryFrame = {
        type: 'history',
        channel,
        epoch: result.epoch,
        offset: DATA.length,
        messages: DATA.map((data, i) => ({ offset: i + 1, data })),
      };
      assert.deepEqual(frame, expected, `${store.kind} ${channel}`);
    }
  }
});
