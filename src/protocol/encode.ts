/**
 * Encoders of the server's frames (docs/protocol.md): one per frame type, each typed against its
 * frame interface, each the only place that frame's JSON text is written.
 *
 * Contract of every encoder: keys in the order of the frame interface, optional keys left out
 * when undefined (JSON.stringify drops them), nothing but the frame's own keys, so a caller's
 * object with extra fields cannot leak them onto the wire.
 *
 * `message` frames are not here: their layout is shared with the bus payload, the Redis script
 * and a byte scanner, so it lives in message-frame.ts (server side). This module uses no
 * Node-only API: the browser SDK may import protocol/.
 */
import type {
  AckFrame,
  ConnectedFrame,
  PingFrame,
  ErrorFrame,
  HistoryFrame,
  JoinLeaveFrame,
  PresenceFrame,
  RefreshedFrame,
  SubscribedFrame,
  UnsubscribedFrame,
} from './frames.js';

/**
 * A retained message as the stores keep it: `data` is its JSON text, as published, spliced into
 * frames unparsed. The caller vouches that `data` is valid JSON (it was produced by JSON.stringify
 * when the message was published).
 */
export interface RawEntry {
  readonly offset: number;
  readonly data: string;
}

/** What a `history` frame carries besides its messages. */
export type HistoryHead = Omit<HistoryFrame, 'messages'>;

/** The body of `GET /api/channels/C/history`: a `history` frame without `type` and `id`. */
export type HistoryBodyHead = Omit<HistoryFrame, 'type' | 'id' | 'messages'>;

export function encodeConnected(frame: ConnectedFrame): string {
  return JSON.stringify({ type: frame.type, client: frame.client, node: frame.node, expires: frame.expires, ping: frame.ping, session: frame.session });
}

/** The `ping` frame ({@link PingFrame}): always these bytes, framed once per node. */
export const PING_JSON = JSON.stringify({ type: 'ping' } satisfies PingFrame);

/**
 * A `subscribed` frame. Its `latest` comes as the stored entry (`latest`, data as JSON text),
 * spliced in last unparsed, as message frames splice their data; `frame.latest` is not read.
 */
export function encodeSubscribed(frame: SubscribedFrame, latest?: RawEntry): string {
  const head = encodeSubscribedHead(frame);
  return latest ? `${head.slice(0, -1)},"latest":{"offset":${latest.offset},"data":${latest.data}}}` : head;
}

function encodeSubscribedHead(frame: SubscribedFrame): string {
  return JSON.stringify({
    type: frame.type,
    channel: frame.channel,
    id: frame.id,
    offset: frame.offset,
    epoch: frame.epoch,
    recovered: frame.recovered,
    data: frame.data,
    server: frame.server,
    expires: frame.expires,
    delta: frame.delta,
  });
}

export function encodeUnsubscribed(frame: UnsubscribedFrame): string {
  return JSON.stringify({ type: frame.type, channel: frame.channel, id: frame.id, reason: frame.reason });
}

export function encodeRefreshed(frame: RefreshedFrame): string {
  return JSON.stringify({ type: frame.type, id: frame.id, channel: frame.channel, expires: frame.expires });
}

export function encodeAck(frame: AckFrame): string {
  return JSON.stringify({ type: frame.type, id: frame.id, offset: frame.offset, duplicate: frame.duplicate });
}

/** A `presence` reply; each client is written as `{"client","user"}`, with `"meta"` when it has one. */
export function encodePresence(frame: PresenceFrame): string {
  return JSON.stringify({
    type: frame.type,
    channel: frame.channel,
    id: frame.id,
    clients: frame.clients.map((c) => ({ client: c.client, user: c.user, meta: c.meta })),
    more: frame.more,
  });
}

/** A `join` or `leave` event (what travels on the bus as a PRESENCE body). */
export function encodeJoinLeave(frame: JoinLeaveFrame): string {
  return JSON.stringify({ type: frame.type, channel: frame.channel, client: frame.client, user: frame.user, meta: frame.meta });
}

export function encodeError(frame: ErrorFrame): string {
  return JSON.stringify({ type: frame.type, id: frame.id, code: frame.code, message: frame.message, channel: frame.channel });
}

/** A `history` reply: `head`'s keys, then `"messages"` with each entry's stored JSON spliced in, then `"more"` when true. */
export function encodeHistory(head: HistoryHead, messages: readonly RawEntry[]): string {
  const json = JSON.stringify({ type: head.type, channel: head.channel, id: head.id, epoch: head.epoch, offset: head.offset });
  return withMessages(json, messages, head.more);
}

/** The HTTP API's history body, `{"channel","epoch","offset","messages","more"}`, from the same pieces as {@link encodeHistory}. */
export function encodeHistoryBody(head: HistoryBodyHead, messages: readonly RawEntry[]): string {
  return withMessages(JSON.stringify({ channel: head.channel, epoch: head.epoch, offset: head.offset }), messages, head.more);
}

/** `[{"offset":O,"data":D},…]`, oldest first as given; `data` is spliced in unparsed. */
export function encodeRawEntries(messages: readonly RawEntry[]): string {
  let out = '[';
  for (let i = 0; i < messages.length; i++) {
    const m = messages[i]!;
    out += `${i === 0 ? '' : ','}{"offset":${JSON.stringify(m.offset)},"data":${m.data}}`;
  }
  return `${out}]`;
}

/** Appends `"messages":[…]` (and `"more":true`) to an encoded JSON object (never empty: it has at least one key). */
function withMessages(objectJson: string, messages: readonly RawEntry[], more: boolean | undefined): string {
  return `${objectJson.slice(0, -1)},"messages":${encodeRawEntries(messages)}${more ? ',"more":true' : ''}}`;
}
