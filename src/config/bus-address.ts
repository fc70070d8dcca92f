/**
 * `--bus` parsed once, at load, into the address its adapter connects to. Every URL that passes
 * here is one the adapter can take as it is: a malformed one is refused before anything starts,
 * with a ConfigError naming the flag, never later in an adapter's constructor.
 *
 * Each address carries `describe`: the same place without credentials, for logs and messages.
 */
import { ConfigError } from '../errors.js';
import { TIMINGS } from './defaults.js';

/** `memory`: one process, no broker. */
export interface MemoryAddress {
  readonly kind: 'memory';
  readonly describe: string;
}

/** `redis://` or `rediss://[user:pass@]host[:port][/db]`: handed to ioredis as it is. */
export interface RedisAddress {
  readonly kind: 'redis';
  readonly url: string;
  readonly describe: string;
}

/** `redis-cluster://[user:pass@]host:port[,host:port…]`: any reachable nodes; the rest is discovered. */
export interface RedisClusterAddress {
  readonly kind: 'redis-cluster';
  readonly nodes: ReadonlyArray<{ readonly host: string; readonly port: number }>;
  readonly username?: string;
  readonly password?: string;
  readonly describe: string;
}

/**
 * `nats://[user:pass@ | token@]host:port[,host:port…]`. The client takes credentials as options,
 * not inside server URLs, so they are moved out of the URL (from the first server that has them).
 */
export interface NatsAddress {
  readonly kind: 'nats';
  readonly servers: readonly string[];
  readonly user?: string;
  readonly pass?: string;
  readonly token?: string;
  readonly describe: string;
}

/** `amqp://` or `amqps://user:pass@host:port[/vhost]`; `url` has a heartbeat unless the URL set one. */
export interface AmqpAddress {
  readonly kind: 'amqp';
  readonly url: string;
  readonly describe: string;
}

/**
 * `kafka://host:port[,host:port…][/topic]`: bootstrap brokers (the rest is discovered) and the one
 * Kafka topic that carries the bus ({@link KAFKA_DEFAULT_TOPIC} when the URL has no path).
 */
export interface KafkaAddress {
  readonly kind: 'kafka';
  readonly brokers: readonly string[];
  readonly topic: string;
  readonly describe: string;
}

/** Where the bus is, by broker. `createBus` switches on `kind`. */
export type BusAddress = MemoryAddress | RedisAddress | RedisClusterAddress | NatsAddress | AmqpAddress | KafkaAddress;

/** What --bus accepts, for messages. */
export const BUS_EXPECTED = 'expected memory, redis://host:port[/db], redis-cluster://host:port,…, nats://host:port, amqp://user:pass@host:port or kafka://host:port,…[/topic]';

/** The Kafka topic of a `kafka://` bus whose URL names none. */
export const KAFKA_DEFAULT_TOPIC = 'fanout';
/** Kafka's port when a `kafka://` host names none. */
export const KAFKA_DEFAULT_PORT = 9092;

/** The memory bus's address. */
export const MEMORY_BUS: MemoryAddress = Object.freeze({ kind: 'memory', describe: 'memory' });

/** Parses a --bus value; throws a ConfigError naming `flag` when the adapter could not use it. */
export function parseBusAddress(value: string, flag = '--bus'): BusAddress {
  if (value === 'memory') return MEMORY_BUS;
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(value)?.[1]?.toLowerCase();
  switch (scheme) {
    case 'redis':
    case 'rediss':
      return Object.freeze({ kind: 'redis', url: value, describe: checkRedisUrl(value, flag) });
    case 'redis-cluster':
      return parseClusterUrl(value, flag);
    case 'nats':
      return parseNatsUrl(value, flag);
    case 'amqp':
    case 'amqps':
      return parseAmqpUrl(value, flag);
    case 'kafka':
      return parseKafkaUrl(value, flag);
    default:
      throw new ConfigError(flag, BUS_EXPECTED);
  }
}

/**
 * Checks a single-Redis URL the way ioredis will read it (host, port, a numeric database) and
 * returns it without credentials or query.
 */
export function checkRedisUrl(value: string, flag: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigError(flag, 'expected redis://[user:pass@]host[:port][/db] with a port from 1 to 65535');
  }
  if (!url.hostname) throw new ConfigError(flag, 'expected redis://[user:pass@]host[:port][/db]: the host is missing');
  const db = url.pathname.replace(/^\//, '');
  if (db !== '' && !/^\d+$/.test(db)) throw new ConfigError(flag, `the database after the host must be a number, not /${db}`);
  return `${url.protocol}//${url.host}${url.pathname === '/' ? '' : url.pathname}`;
}

/** Parses `redis-cluster://[user:pass@]host:port[,host:port…]` (port 6379 when left out). */
export function parseClusterUrl(value: string, flag = '--bus'): RedisClusterAddress {
  const rest = value.replace(/^redis-cluster:\/\//i, '');
  const at = rest.lastIndexOf('@');
  const auth = at >= 0 ? rest.slice(0, at) : '';
  const hosts = at >= 0 ? rest.slice(at + 1) : rest;
  const nodes = hosts
    .replace(/\/.*$/, '')
    .split(',')
    .map((h) => h.trim())
    .filter((h) => h.length > 0)
    .map((h) => {
      const colon = h.lastIndexOf(':');
      const host = colon >= 0 ? h.slice(0, colon) : h;
      const port = colon >= 0 ? Number(h.slice(colon + 1)) : 6379;
      if (!host) throw new ConfigError(flag, `no host in "${h}"`);
      if (!Number.isInteger(port) || port < 1 || port > 65535) throw new ConfigError(flag, `bad port in "${h}" (expected 1 to 65535)`);
      return Object.freeze({ host, port });
    });
  if (nodes.length === 0) throw new ConfigError(flag, 'redis-cluster:// needs at least one host:port');
  const colon = auth.indexOf(':');
  let username: string;
  let password: string;
  try {
    username = colon >= 0 ? decodeURIComponent(auth.slice(0, colon)) : '';
    password = colon >= 0 ? decodeURIComponent(auth.slice(colon + 1)) : decodeURIComponent(auth);
  } catch {
    throw new ConfigError(flag, 'bad %-escape in the credentials');
  }
  return Object.freeze({
    kind: 'redis-cluster',
    nodes: Object.freeze(nodes),
    ...(username ? { username } : {}),
    ...(password ? { password } : {}),
    describe: `redis-cluster://${nodes.map((n) => `${n.host}:${n.port}`).join(',')}`,
  });
}

/** Parses `nats://…`; a lone user part (`nats://TOKEN@host`) is a token, `user:pass@` a user and password. */
export function parseNatsUrl(value: string, flag = '--bus'): NatsAddress {
  let user: string | undefined;
  let pass: string | undefined;
  const servers: string[] = [];
  for (const part of value.split(',').map((s) => s.trim())) {
    if (part === '') continue;
    let url: URL;
    try {
      url = new URL(part.includes('://') ? part : `nats://${part}`);
    } catch {
      throw new ConfigError(flag, `bad NATS server "${withoutCredentials(part)}"`);
    }
    if (!url.hostname) throw new ConfigError(flag, `no host in NATS server "${withoutCredentials(part)}"`);
    if (url.username && user === undefined) {
      try {
        user = decodeURIComponent(url.username);
        pass = url.password ? decodeURIComponent(url.password) : undefined;
      } catch {
        throw new ConfigError(flag, 'bad %-escape in the credentials');
      }
    }
    servers.push(`${url.protocol}//${url.host}`);
  }
  if (servers.length === 0) throw new ConfigError(flag, 'nats:// needs at least one host:port');
  const base = { kind: 'nats' as const, servers: Object.freeze(servers), describe: servers.join(',') };
  if (user === undefined) return Object.freeze(base);
  return Object.freeze(pass === undefined ? { ...base, token: user } : { ...base, user, pass });
}

/** Parses `amqp://…` and adds a heartbeat (see {@link TIMINGS.amqpHeartbeatS}) unless it names one. */
export function parseAmqpUrl(value: string, flag = '--bus'): AmqpAddress {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigError(flag, 'expected amqp://user:pass@host[:port][/vhost] with a port from 1 to 65535');
  }
  if (!url.hostname) throw new ConfigError(flag, 'expected amqp://user:pass@host[:port][/vhost]: the host is missing');
  const withHeartbeat = /[?&]heartbeat=/.test(value) ? value : `${value}${value.includes('?') ? '&' : '?'}heartbeat=${TIMINGS.amqpHeartbeatS}`;
  return Object.freeze({ kind: 'amqp', url: withHeartbeat, describe: `${url.protocol}//${url.host}${url.pathname === '/' ? '' : url.pathname}` });
}

/** Parses `kafka://host[:port][,host[:port]…][/topic]` (port {@link KAFKA_DEFAULT_PORT} when left out). */
export function parseKafkaUrl(value: string, flag = '--bus'): KafkaAddress {
  const rest = value.replace(/^kafka:\/\//i, '');
  const slash = rest.indexOf('/');
  const hosts = slash >= 0 ? rest.slice(0, slash) : rest;
  const topic = slash >= 0 ? rest.slice(slash + 1) : KAFKA_DEFAULT_TOPIC;
  if (hosts.includes('@')) throw new ConfigError(flag, 'kafka:// takes no credentials (SASL is not supported yet): kafka://host:port[,host:port…][/topic]');
  if (!/^[A-Za-z0-9._-]{1,249}$/.test(topic) || topic === '.' || topic === '..') {
    throw new ConfigError(flag, `bad Kafka topic "${topic}" after the hosts (1 to 249 of a-z A-Z 0-9 . _ -)`);
  }
  const brokers = parseKafkaBrokers(hosts, flag, 'kafka://');
  return Object.freeze({ kind: 'kafka', brokers, topic, describe: `kafka://${brokers.join(',')}/${topic}` });
}

/**
 * Kafka bootstrap brokers `host[:port][,host[:port]…]` (port {@link KAFKA_DEFAULT_PORT} when left
 * out) as `host:port` strings; `what` names the value in the message (kafka://, or the flag).
 */
export function parseKafkaBrokers(hosts: string, flag: string, what = flag): readonly string[] {
  const brokers = hosts
    .split(',')
    .map((h) => h.trim())
    .filter((h) => h.length > 0)
    .map((h) => {
      const bracketed = /^\[([^\]]+)\](?::(.*))?$/.exec(h);
      const colon = h.lastIndexOf(':');
      const host = bracketed ? bracketed[1]! : colon >= 0 ? h.slice(0, colon) : h;
      const portText = bracketed ? bracketed[2] : colon >= 0 ? h.slice(colon + 1) : undefined;
      const port = portText === undefined ? KAFKA_DEFAULT_PORT : Number(portText);
      if (!host || /[\s?#]/.test(host)) throw new ConfigError(flag, `no host in "${h}"`);
      if (!/^\d+$/.test(portText ?? '1') || !Number.isInteger(port) || port < 1 || port > 65535) throw new ConfigError(flag, `bad port in "${h}" (expected 1 to 65535)`);
      return `${host.includes(':') ? `[${host}]` : host}:${port}`;
    });
  if (brokers.length === 0) throw new ConfigError(flag, `${what} needs at least one host:port`);
  return Object.freeze(brokers);
}

/** `value` with every `user:pass@` of its URLs left out: safe to print. */
export function withoutCredentials(value: string): string {
  return value.replace(/(^|\/\/|,)[^@/,]*@/g, '$1');
}
