/** Where the real brokers of integration tests are (.ci/run starts them when they are missing). */
export const REDIS_URL = process.env.FANOUT_TEST_REDIS ?? 'redis://127.0.0.1:6379';
