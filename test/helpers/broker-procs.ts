/**
 * Private broker processes for tests that stop and restart a broker (bench/brokers.ts holds them,
 * shared with the benchmark), and the system RabbitMQ node's application restart.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

export { BrokerProcess, RedisClusterProcesses, startNatsServer, startRedisServer, waitPort } from '../../harness/brokers.js';

const run = promisify(execFile);

/**
 * The system RabbitMQ node: only these tests use it, so a restart of its application
 * (`rabbitmqctl stop_app` / `start_app`, about a second each) is a real broker restart.
 */
export const rabbit = {
  async stop(): Promise<void> {
    await run('rabbitmqctl', ['stop_app'], { timeout: 60_000 });
  },
  async start(): Promise<void> {
    await run('rabbitmqctl', ['start_app'], { timeout: 60_000 });
    await run('rabbitmqctl', ['await_startup'], { timeout: 60_000 });
  },
};
