/**
 * `--kafka-ingest TOPIC` (with `--kafka-brokers` and `--kafka-ingest-group`) resolved once, at
 * load, into what the ingest consumer needs (src/ingest/kafka-ingest.ts, docs/brokers.md).
 */
import { ConfigError } from '../errors.js';
import { parseKafkaBrokers, type BusAddress } from './bus-address.js';

/** Where ingested records come from. */
export interface KafkaIngestTarget {
  readonly topic: string;
  /** Bootstrap brokers, `host:port`. */
  readonly brokers: readonly string[];
  /** The consumer group every node of the cluster joins, so each record is handled by one of them. */
  readonly group: string;
  /** The brokers, for logs. */
  readonly describe: string;
}

/** A Kafka topic name. */
export const KAFKA_TOPIC = /^[A-Za-z0-9._-]{1,249}$/;
/** A consumer group id as we accept it: a topic name's characters and `:`, so that every --bus-prefix makes a valid default. */
export const KAFKA_GROUP = /^[A-Za-z0-9._:-]{1,249}$/;

/** Parses `--kafka-brokers host:port[,host:port…]`. */
export function parseIngestBrokers(value: string): readonly string[] {
  if (value.includes('@') || value.includes('://')) throw new ConfigError('--kafka-brokers', 'expected host:port[,host:port…] (no scheme, no credentials)');
  return parseKafkaBrokers(value, '--kafka-brokers');
}

/**
 * The ingest target, or undefined without --kafka-ingest. The brokers default to the bus's when
 * the bus is Kafka; the group to `fanout-ingest-<bus-prefix>`, shared by the cluster's nodes.
 */
export function kafkaIngestTarget(
  options: { readonly kafkaIngest?: string | undefined; readonly kafkaBrokers?: readonly string[] | undefined; readonly kafkaIngestGroup?: string | undefined; readonly busPrefix: string },
  bus: BusAddress,
): KafkaIngestTarget | undefined {
  const { kafkaIngest: topic, kafkaBrokers, kafkaIngestGroup } = options;
  if (topic === undefined) {
    if (kafkaBrokers !== undefined) throw new ConfigError('--kafka-brokers', 'goes with --kafka-ingest (the bus takes its brokers from --bus kafka://…)');
    if (kafkaIngestGroup !== undefined) throw new ConfigError('--kafka-ingest-group', 'goes with --kafka-ingest');
    return undefined;
  }
  const brokers = kafkaBrokers ?? (bus.kind === 'kafka' ? bus.brokers : undefined);
  if (brokers === undefined) throw new ConfigError('--kafka-brokers', `required with --kafka-ingest when --bus is not kafka://… (the brokers to read ${topic} from)`);
  const group = kafkaIngestGroup ?? `fanout-ingest-${options.busPrefix}`;
  return Object.freeze({ topic, brokers, group, describe: brokers.join(',') });
}
