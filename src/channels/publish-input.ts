/**
 * What a back end's publish must be before it reaches the channel service, checked in one place
 * for every way a back end publishes: `POST /api/publish` (http/api.ts) and Kafka ingest
 * (ingest/kafka-ingest.ts). The same input gets the same answer from both.
 */
import { isChannelName, MAX_DATA_DEPTH, nestsDeeperThan } from '../protocol/decode.js';

/** A publish the service can take: the channel and the data as JSON text. */
export interface PublishInput {
  readonly channel: string;
  readonly data: string;
}

/** Why an input was refused: `too_large` past --max-payload, `bad_request` otherwise (the API's codes). */
export interface PublishRefusal {
  readonly error: 'bad_request' | 'too_large';
  readonly message: string;
}

/** `bytes` as JSON, refused past `maxPayload` bytes or when it does not parse. */
export function parseJsonInput(bytes: Buffer, maxPayload: number): { readonly value: unknown } | PublishRefusal {
  if (bytes.length > maxPayload) return { error: 'too_large', message: `over --max-payload (${maxPayload} bytes)` };
  try {
    return { value: JSON.parse(bytes.toString('utf8')) };
  } catch {
    return { error: 'bad_request', message: 'not JSON' };
  }
}

/** A channel name and a parsed JSON value as a publish, or why they cannot be one. */
export function publishInput(channel: unknown, data: unknown): PublishInput | PublishRefusal {
  if (!isChannelName(channel)) return { error: 'bad_request', message: '"channel" must be 1–200 letters, digits or _ - . : @ / = +' };
  if (data === undefined) return { error: 'bad_request', message: '"data" is missing' };
  if (nestsDeeperThan(data, MAX_DATA_DEPTH)) return { error: 'bad_request', message: `"data" nests deeper than ${MAX_DATA_DEPTH} levels` };
  return { channel, data: JSON.stringify(data) };
}

/** True for a refusal. */
export function isRefusal(value: object): value is PublishRefusal {
  return 'error' in value;
}
