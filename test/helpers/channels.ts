/** Helpers for channel-protocol tests: a JSON view over TestClient. */
import type { FanoutNode } from '../../src/app.js';
import { CHANNEL_PATH } from '../../src/protocol/frames.js';
import { wsUrl } from './nodes.js';
import { connect, type TestClient } from './ws-client.js';

export type Frame = Record<string, unknown> & { type: string };

/** Opens /ws/v1 on `node` (or a port) and waits for the `connected` frame. */
export async function connectChannels(target: FanoutNode | number): Promise<TestClient> {
  const url = typeof target === 'number' ? `ws://127.0.0.1:${target}${CHANNEL_PATH}` : wsUrl(target, CHANNEL_PATH);
  const client = await connect(url);
  await client.json((f) => f.type === 'connected');
  return client;
}

/** Every JSON frame received so far. */
export function frames(client: TestClient): Frame[] {
  return client.messages.map((m) => JSON.parse(m) as Frame);
}

/** Sends a request with an id and waits for the reply (or error) echoing that id. */
let ids = 1000;
export async function request(client: TestClient, frame: Record<string, unknown>, timeoutMs = 5000): Promise<Frame> {
  const id = ids++;
  client.sendJson({ ...frame, id });
  return client.json<Frame>((f) => f.id === id, timeoutMs);
}

/** The `message` frames of `channel` received so far. */
export function messagesOf(client: TestClient, channel: string): Frame[] {
  return frames(client).filter((f) => f.type === 'message' && f.channel === channel);
}

/** Waits until `count` messages of `channel` arrived, and returns them. */
export async function waitMessages(client: TestClient, channel: string, count: number, timeoutMs = 5000): Promise<Frame[]> {
  await client.until(
    (all) => all.filter((m) => m.includes('"type":"message"') && (JSON.parse(m) as Frame).channel === channel).length >= count,
    timeoutMs,
    `${count} messages on ${channel}`,
  );
  return messagesOf(client, channel);
}

/** Subscribes and returns the `subscribed` reply (throws on an error reply). */
export async function subscribe(client: TestClient, channel: string, since?: { offset: number; epoch: string }): Promise<Frame> {
  const reply = await request(client, { type: 'subscribe', channel, ...(since ? { since } : {}) });
  if (reply.type !== 'subscribed') throw new Error(`subscribe failed: ${JSON.stringify(reply)}`);
  return reply;
}

/** Publishes and returns the ack's offset (throws on an error reply). */
export async function publish(client: TestClient, channel: string, data: unknown): Promise<number> {
  const reply = await request(client, { type: 'publish', channel, data });
  if (reply.type !== 'ack') throw new Error(`publish failed: ${JSON.stringify(reply)}`);
  return reply.offset as number;
}
