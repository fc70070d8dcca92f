/**
 * The channel feature's public face: what the other features (the HTTP API, the Kafka ingest)
 * may use. They publish and read through the {@link ChannelService} and validate input the way
 * the socket endpoint does; nothing else of src/channels is theirs to import.
 */
export { ChannelService, channelTopic, channelOfTopic } from './service.js';
export { presenceWithinBudget, REPLY_BUDGET_BYTES } from './budget.js';
export { isRefusal, parseJsonInput, publishInput, type PublishInput, type PublishRefusal } from './publish-input.js';
