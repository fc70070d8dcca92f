/** Where the real brokers of integration tests are (.ci/run starts them when they are missing). */
export const REDIS_URL = process.env.FANOUT_TEST_REDIS ?? 'redis://127.0.0.1:6379';
/** The shared NATS and RabbitMQ (.ci/run starts them on their default ports). */
export const NATS_URL = process.env.FANOUT_TEST_NATS ?? 'nats://127.0.0.1:4222';
export const AMQP_URL = process.env.FANOUT_TEST_AMQP ?? 'amqp://guest:guest@127.0.0.1:5672';
