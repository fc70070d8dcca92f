/**
 * The Fanout client SDK, for browsers and Node (same code; Node uses the `ws` package).
 * The whole public surface is exported here; docs/client.md documents it.
 *
 * ```ts
 * import { FanoutClient } from './index.js';
 * const client = new FanoutClient({ url: 'ws://localhost:8080/ws/v1', token });
 * const room = client.subscribe('room', { onMessage: (data, { offset }) => show(data) });
 * client.connect();
 * await room.publish({ text: 'hello' }); // resolves with { offset } once acked
 * ```
 */
export { FanoutClient, connect, endpointUrl, CHANNEL_PATH, CLIENT_DEFAULTS } from './client.js';
export type { ClientOptions, ClientState, ClientEvents, ConnectedInfo, DisconnectedInfo } from './client.js';
export { Subscription } from './subscription.js';
export type { SubscriptionState, SubscriptionEvents, SubscriptionHandlers, SubscribeOptions, SubscribedInfo, MessageContext, HistoryPage, HistoryResult, PublishOptions, PublishAck, JsonCompatible, PublishBound } from './subscription.js';
export { FanoutClientError } from './errors.js';
export type { ClientErrorCode } from './errors.js';
export { backoffDelay, BACKOFF_DEFAULTS } from './backoff.js';
export type { BackoffOptions } from './backoff.js';
export { CloseCode, shouldReconnect, shouldRetryUpgrade } from '../src/protocol/codes.js';
export { ChannelCursor } from './cursor.js';
export type { SubscribeOutcome } from './cursor.js';
export type { WebSocketConstructor, WebSocketLike } from './transport.js';
export type { UpgradeRefusal, RefusedBy } from './refusal.js';
export type { Unlisten } from './emitter.js';
export type { Json, StreamPosition, PresenceClient, HistoryEntry } from '../src/protocol/frames.js';
