/**
 * The brokers the benchmark runs Fanout over (`--brokers`); the broker processes themselves are
 * in harness/brokers.ts, shared with the tests.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RedisClusterProcesses, startNatsServer } from '../harness/brokers.js';
import { KafkaProcess } from '../harness/kafka.js';
import { waitPort } from '../harness/ports.js';
import { processesNamed } from './proc.js';

/** The brokers `npm run bench -- --brokers` runs Fanout over. */
export const BENCH_BROKERS = ['redis', 'nats', 'amqp', 'redis-cluster', 'kafka'] as const;
export type BenchBroker = (typeof BENCH_BROKERS)[number];

export const BROKER_LABELS: Record<BenchBroker, string> = {
  redis: 'Redis pub/sub (one redis-server)',
  nats: 'NATS core pub/sub (one nats-server, JetStream on)',
  amqp: 'RabbitMQ, publisher confirms (the machine\'s node)',
  'redis-cluster': 'Redis Cluster, sharded pub/sub (3 masters)',
  kafka: 'Kafka, one topic, acks=all (one KRaft broker)',
};

/** The logs that hold channel history with their own broker as the bus (`--history-logs`). */
export const HISTORY_LOGS = ['redis', 'nats', 'kafka'] as const satisfies readonly BenchBroker[];
export type HistoryLog = (typeof HISTORY_LOGS)[number];

export const HISTORY_LOG_LABELS: Record<HistoryLog, string> = {
  redis: 'Redis Streams + Lua (history in the bus\'s Redis)',
  nats: 'NATS JetStream (stream sequences, republish)',
  kafka: 'the Kafka log (a topic indexed by each node)',
};

/** A broker for one benchmark point: its URL, the processes whose CPU counts, and how to let it go. */
export interface BenchBrokerHandle {
  readonly url: string;
  readonly pids: readonly number[];
  stop(): Promise<void>;
}

/**
 * Starts (or, for RabbitMQ, finds) a broker for the benchmark. Redis is the bench's own server;
 * NATS, the Redis Cluster and Kafka (scripts/kafka-dev.sh in a folder of its own, a JVM: about
 * 10 s to start) are started on free ports and stopped afterwards; RabbitMQ is too
 * heavy to start per run, so the machine's node at `amqpUrl` is used, and its CPU is counted when
 * its `beam.smp` process can be found.
 */
export async function startBenchBroker(kind: BenchBroker, ownRedis: { url: string; pid: number }, amqpUrl: string): Promise<BenchBrokerHandle> {
  switch (kind) {
    case 'redis':
      return { url: ownRedis.url, pids: [ownRedis.pid], stop: async () => {} };
    case 'nats': {
      // With JetStream: a NATS bus keeps channel history and presence there by default.
      const dir = mkdtempSync(join(tmpdir(), 'fanout-bench-nats-'));
      const nats = await startNatsServer(['-js', '-sd', dir]);
      return {
        url: nats.url,
        pids: nats.pid === undefined ? [] : [nats.pid],
        stop: async () => {
          await nats.stop();
          rmSync(dir, { recursive: true, force: true });
        },
      };
    }
    case 'redis-cluster': {
      const cluster = await RedisClusterProcesses.start(3);
      return { url: cluster.url, pids: cluster.pids, stop: () => cluster.stop() };
    }
    case 'kafka': {
      const kafka = await KafkaProcess.start();
      const pid = kafka.pid;
      return { url: kafka.url(), pids: pid === undefined ? [] : [pid], stop: () => kafka.destroy() };
    }
    case 'amqp': {
      const { hostname, port } = new URL(amqpUrl);
      if (!['127.0.0.1', 'localhost'].includes(hostname)) return { url: amqpUrl, pids: [], stop: async () => {} };
      await waitPort(Number(port || 5672), { timeoutMs: 2000, what: `RabbitMQ on ${hostname}:${port || 5672}` });
      return { url: amqpUrl, pids: processesNamed('beam.smp'), stop: async () => {} };
    }
  }
}
