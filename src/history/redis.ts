/**
 * History and presence in Redis.
 *
 * History: per channel a hash `P:ch:{C}:meta` (epoch, offset) and a stream `P:ch:{C}:log` whose
 * entry ids are `<offset>-0`. One Lua script does HINCRBY (the offset) + XADD (MAXLEN ~
 * --history-size) + EXPIRE (--history-ttl) + PUBLISH, so offsets, history and the order in which
 * every node receives messages agree: Redis runs scripts one at a time, and every node (the
 * publisher's included) takes channel messages from the one pub/sub stream. The script builds
 * the payload from the head the publishing node passes (envelope header + frame up to the offset,
 * layout in protocol/message-frame.ts). `{C}` is a hash tag, so a channel's keys share a cluster slot.
 *
 * Ingest marks (OutgoingMessage.once, Kafka ingest): a hash `P:ch:{C}:once` (source → last
 * position published), read and moved by the same publish script, so a record handed over again
 * is refused atomically with the publish it would have been.
 *
 * Epoch: a random id in the meta hash, created with the hash and replaced (offsets restart at 1)
 * when the hash is gone or the stream vanished under it (flushed, evicted, expired).
 *
 * Presence: a hash per channel `P:presence:{C}` (client → {"node","user"}), a sorted set
 * `P:presence:nodes` (node → last heartbeat, Redis time) and per node a set of the channels it
 * has entries in. Every node heartbeats each --presence-ttl/3 seconds; the heartbeat script also
 * sweeps nodes silent for --presence-ttl, removing their entries and returning them so the node
 * that swept publishes their `leave` events (exactly one node does, the script being atomic).
 *
 * Occupancy (--webhook): per channel a hash `P:wh:occ:{C}` (node → its live subscribers) and a
 * hash `P:wh:users:{C}` (user → {"node":connections,…}), and per node a set `P:wh:node:<node>` of
 * the channels it has counts in. A node writes its own absolute counts with one script that
 * reports whether the write crossed 0↔1 cluster-wide (the hash, or the user's field, appearing or
 * going); the heartbeat's sweep removes a dead node's counts in the same atomic step as its
 * presence and reports the crossings that caused. So each crossing is seen by exactly one node.
 */
import type { Redis } from 'ioredis';
import { TIMINGS } from '../config/defaults.js';
import { BusUnavailableError } from '../errors.js';
import { luaMessagePayload } from '../protocol/message-frame.js';
import { newEpoch } from './memory.js';
import { PresenceWrites } from './presence-writes.js';
import {
  type ChannelStore,
  type DepartedHandler,
  type OccupancyChange,
  type OccupancyEvent,
  type OccupancyStore,
  type OutgoingMessage,
  type PresenceEntry,
  type PresenceStore,
  type PublishResult,
  type ReadOptions,
  type ReadResult,
  type StoredMessage,
} from './store.js';

/**
 * ensure(): the channel's epoch and offset, creating (or replacing) the epoch when the channel
 * has none or its history vanished (flushed, evicted, expired). A new epoch that holds no message
 * yet expires after --history-ttl, or {@link EMPTY_EPOCH_TTL_S} with --history-ttl 0, so a
 * subscription to a name that never gets a message leaves nothing for long; each fenced read of it
 * (a subscription joining) renews that. peek(): the same without writing anything, for reads that
 * hand out no position to continue from (history pages): nil when the channel has no epoch.
 */
const ENSURE_EPOCH = `
local function peek(meta, log, size)
  local cur = redis.call('HMGET', meta, 'epoch', 'offset')
  local epoch, offset = cur[1], tonumber(cur[2] or '0')
  if (not epoch) or (offset > 0 and size > 0 and redis.call('EXISTS', log) == 0) then return nil, 0 end
  return epoch, offset
end
local function ensure(meta, log, candidate, ttl, size, emptyTtl)
  local epoch, offset = peek(meta, log, size)
  if not epoch then
    epoch = candidate
    offset = 0
    redis.call('DEL', log)
    redis.call('HSET', meta, 'epoch', epoch, 'offset', 0)
  end
  if offset == 0 then
    if ttl > 0 then redis.call('EXPIRE', meta, ttl) else redis.call('EXPIRE', meta, emptyTtl) end
  end
  return epoch, offset
end
`;

/**
 * KEYS: meta, log, marks. ARGV: candidate epoch, ttl, size, topic, head, data, once source ('' for
 * none), once position, marks ttl, empty epoch ttl. Returns {offset, epoch, duplicate}: with a
 * source whose mark is at or past the position, nothing is stored or published (OutgoingMessage.once).
 */
const PUBLISH_SCRIPT = `${ENSURE_EPOCH}
local ttl, size = tonumber(ARGV[2]), tonumber(ARGV[3])
local epoch, current = ensure(KEYS[1], KEYS[2], ARGV[1], ttl, size, tonumber(ARGV[10]))
if ARGV[7] ~= '' then
  local mark = redis.call('HGET', KEYS[3], ARGV[7])
  if mark and tonumber(ARGV[8]) <= tonumber(mark) then return {current, epoch, 1} end
  redis.call('HSET', KEYS[3], ARGV[7], ARGV[8])
  if tonumber(ARGV[9]) > 0 then redis.call('EXPIRE', KEYS[3], ARGV[9]) end
end
local offset = redis.call('HINCRBY', KEYS[1], 'offset', 1)
if size > 0 then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', size, offset .. '-0', 'd', ARGV[6])
end
if ttl > 0 then
  redis.call('EXPIRE', KEYS[1], ttl)
  if size > 0 then redis.call('EXPIRE', KEYS[2], ttl) end
else
  -- Kept for good once it holds a message (it was created to expire as an empty epoch).
  redis.call('PERSIST', KEYS[1])
end
if ARGV[4] ~= '' then
  -- The message frame's layout, generated from protocol/message-frame.ts.
  redis.call('PUBLISH', ARGV[4], ${luaMessagePayload({ head: 'ARGV[5]', offset: 'offset', epoch: 'epoch', data: 'ARGV[6]' })})
end
return {offset, epoch, 0}
`;

/**
 * KEYS: meta, log. ARGV: candidate epoch, ttl, size, mode (since|limit), since offset or limit,
 * since epoch, fence topic ('' for none), fence payload, before offset ('' for none, at least 2),
 * max bytes (0 for no cap), empty epoch ttl. The fence is published at the point of the read in
 * the channel's message stream (see ReadOptions.fence). Returns {offset, epoch, covered, more,
 * id, data, id, data, …}.
 *
 * Only a read with a fence (a subscription joining, or a node catching up) creates the channel's
 * epoch: its subscribers hold that position, and the first publish must continue it. A read
 * without one writes nothing; on a channel with no epoch it answers offset 0 and the candidate
 * epoch, which nothing stores, so a `since` at it never counts as covered later (the store cannot
 * know what happened to the channel between) while a history page of it is simply empty.
 *
 * In limit mode the entries are taken newest first, a few at a time, so a read that stops at
 * max bytes does not first load the whole stream.
 */
const READ_SCRIPT = `${ENSURE_EPOCH}
local ttl, size = tonumber(ARGV[2]), tonumber(ARGV[3])
local epoch, offset
if ARGV[7] ~= '' then
  epoch, offset = ensure(KEYS[1], KEYS[2], ARGV[1], ttl, size, tonumber(ARGV[11]))
  redis.call('PUBLISH', ARGV[7], ARGV[8])
else
  epoch, offset = peek(KEYS[1], KEYS[2], size)
  if not epoch then
    if ARGV[4] == 'since' then return {0, ARGV[1], 0, 0} end
    return {0, ARGV[1], 1, 0}
  end
end
local out = {offset, epoch, 1, 0}
local n = tonumber(ARGV[5])
-- The oldest offset the channel keeps: the stream is trimmed in whole nodes (MAXLEN ~), so it
-- may hold older entries, but a read never answers with them (exactly --history-size, as on
-- every store).
local oldest = '-'
if size > 0 and offset > size then oldest = (offset - size + 1) .. '-0' end
if ARGV[4] == 'since' then
  if ARGV[6] ~= epoch or n > offset or (size > 0 and n < offset - size) then out[3] = 0 return out end
  if n == offset then return out end
  local entries = redis.call('XRANGE', KEYS[2], (n + 1) .. '-0', '+')
  if #entries == 0 or entries[1][1] ~= (n + 1) .. '-0' then out[3] = 0 return out end
  for i = 1, #entries do
    out[#out + 1] = entries[i][1]
    out[#out + 1] = entries[i][2][2]
  end
elseif n > 0 then
  local hi = '+'
  if ARGV[9] ~= '' then hi = '(' .. ARGV[9] .. '-0' end
  local maxBytes = tonumber(ARGV[10])
  local picked, bytes, full = {}, 0, false
  while #picked < n and not full do
    local want = math.min(16, n - #picked)
    local entries = redis.call('XREVRANGE', KEYS[2], hi, oldest, 'COUNT', want)
    for i = 1, #entries do
      local data = entries[i][2][2]
      if maxBytes > 0 and #picked > 0 and bytes + #data > maxBytes then full = true break end
      bytes = bytes + #data
      picked[#picked + 1] = entries[i]
      hi = '(' .. entries[i][1]
    end
    if #entries < want then break end
  end
  if #picked > 0 and #redis.call('XREVRANGE', KEYS[2], hi, oldest, 'COUNT', 1) > 0 then out[4] = 1 end
  for i = #picked, 1, -1 do
    out[#out + 1] = picked[i][1]
    out[#out + 1] = picked[i][2][2]
  end
end
return out
`;

const SWEEP_NODE = `
local function sweepNode(prefix, node, out)
  local set = prefix .. ':presence:node:' .. node
  for _, channel in ipairs(redis.call('SMEMBERS', set)) do
    local hash = prefix .. ':presence:{' .. channel .. '}'
    local all = redis.call('HGETALL', hash)
    for i = 1, #all, 2 do
      if cjson.decode(all[i + 1]).node == node then
        redis.call('HDEL', hash, all[i])
        out[#out + 1] = channel
        out[#out + 1] = all[i]
        out[#out + 1] = all[i + 1]
      end
    end
  end
  redis.call('DEL', set)
end
local function sweepOccupancy(prefix, node, events)
  local set = prefix .. ':wh:node:' .. node
  for _, channel in ipairs(redis.call('SMEMBERS', set)) do
    local occ = prefix .. ':wh:occ:{' .. channel .. '}'
    local users = prefix .. ':wh:users:{' .. channel .. '}'
    local all = redis.call('HGETALL', users)
    for i = 1, #all, 2 do
      local map = cjson.decode(all[i + 1])
      if map[node] ~= nil then
        map[node] = nil
        if next(map) == nil then
          redis.call('HDEL', users, all[i])
          events[#events + 1] = 'member_removed'
          events[#events + 1] = channel
          events[#events + 1] = all[i]
        else
          redis.call('HSET', users, all[i], cjson.encode(map))
        end
      end
    end
    if redis.call('HDEL', occ, node) == 1 and redis.call('EXISTS', occ) == 0 then
      events[#events + 1] = 'channel_vacated'
      events[#events + 1] = channel
      events[#events + 1] = ''
    end
  end
  redis.call('DEL', set)
end
local function now()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
`;

/**
 * KEYS: nodes zset. ARGV: prefix, this node, ttl ms, mode: beat | leave (this node stops).
 * Returns {added (1 when this node was not registered), {channel, client, value, …} of departed
 * presence entries, {name, channel, user, …} of occupancy crossings the sweep caused}.
 */
const HEARTBEAT_SCRIPT = `${SWEEP_NODE}
local out, events = {}, {}
if ARGV[4] == 'leave' then
  redis.call('ZREM', KEYS[1], ARGV[2])
  sweepNode(ARGV[1], ARGV[2], out)
  sweepOccupancy(ARGV[1], ARGV[2], events)
  return {0, out, events}
end
local t = now()
local added = redis.call('ZADD', KEYS[1], t, ARGV[2])
for _, node in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', t - tonumber(ARGV[3]))) do
  redis.call('ZREM', KEYS[1], node)
  sweepNode(ARGV[1], node, out)
  sweepOccupancy(ARGV[1], node, events)
end
return {added, out, events}
`;

/**
 * KEYS: occupancy hash, users hash, this node's channel set. ARGV: node, channel, subscribers,
 * then user, connections pairs (absolute counts of this node). Returns {name, user, …} of the
 * cluster-wide crossings this write caused.
 */
const OCCUPANCY_SCRIPT = `
local node, channel, subscribers = ARGV[1], ARGV[2], tonumber(ARGV[3])
local out = {}
local before = redis.call('EXISTS', KEYS[1])
if subscribers > 0 then
  redis.call('HSET', KEYS[1], node, subscribers)
  redis.call('SADD', KEYS[3], channel)
else
  redis.call('HDEL', KEYS[1], node)
end
if before == 0 and subscribers > 0 then
  out[#out + 1] = 'channel_occupied'
  out[#out + 1] = ''
end
for i = 4, #ARGV - 1, 2 do
  local user, n = ARGV[i], tonumber(ARGV[i + 1])
  local raw = redis.call('HGET', KEYS[2], user)
  local map = {}
  if raw then map = cjson.decode(raw) end
  local had = next(map) ~= nil
  if n > 0 then map[node] = n else map[node] = nil end
  local has = next(map) ~= nil
  if has then redis.call('HSET', KEYS[2], user, cjson.encode(map)) else redis.call('HDEL', KEYS[2], user) end
  if has and not had then
    out[#out + 1] = 'member_added'
    out[#out + 1] = user
  elseif had and not has then
    out[#out + 1] = 'member_removed'
    out[#out + 1] = user
  end
end
if subscribers == 0 then
  -- A node's users are counted only while it has subscribers: with none it has no counts here.
  redis.call('SREM', KEYS[3], channel)
  if before == 1 and redis.call('EXISTS', KEYS[1]) == 0 then
    out[#out + 1] = 'channel_vacated'
    out[#out + 1] = ''
  end
end
return out
`;

/** KEYS: presence hash, nodes zset. ARGV: ttl ms. Entries of live nodes only. */
const LIST_SCRIPT = `${SWEEP_NODE}
local t = now()
local all = redis.call('HGETALL', KEYS[1])
local alive = {}
local out = {}
for i = 1, #all, 2 do
  local node = cjson.decode(all[i + 1]).node
  local ok = alive[node]
  if ok == nil then
    local score = redis.call('ZSCORE', KEYS[2], node)
    ok = (score ~= false) and (t - tonumber(score) <= tonumber(ARGV[1]))
    alive[node] = ok
  end
  if ok then
    out[#out + 1] = all[i]
    out[#out + 1] = all[i + 1]
  end
end
return out
`;

/**
 * Seconds a channel's {@link OutgoingMessage.once} marks outlive its last such publish (at least
 * --history-ttl): a log can hand a message over again long after the channel's history expired
 * (a node down for hours before it commits), and the mark must still be there to refuse it.
 */
const ONCE_MARKS_TTL_S = 7 * 24 * 3600;

/**
 * Seconds the epoch of a channel that holds no message lives with --history-ttl 0 (with a ttl,
 * the ttl): created by a subscription joining an empty channel, it must not stay for good, or
 * subscribing to ever new names would fill Redis. A subscriber that waits longer for the first
 * message sees it in a new epoch (the SDK's `unrecovered`, with nothing to reload).
 */
export const EMPTY_EPOCH_TTL_S = 300;

type ScriptRedis = Redis & {
  fanoutPublish(meta: string, log: string, marks: string, ...args: Array<string | Buffer | number>): Promise<[number, string, number]>;
  fanoutRead(meta: string, log: string, ...args: Array<string | number | Buffer>): Promise<Array<number | string>>;
  fanoutHeartbeat(nodes: string, ...args: Array<string | number>): Promise<[number, string[], string[]]>;
  fanoutOccupancy(occ: string, users: string, nodeSet: string, ...args: Array<string | number>): Promise<string[]>;
  fanoutPresence(hash: string, nodes: string, ttl: number): Promise<string[]>;
};

/** Registers the scripts on a connection (EVALSHA with EVAL fallback). */
export function withScripts(redis: Redis): ScriptRedis {
  redis.defineCommand('fanoutPublish', { numberOfKeys: 3, lua: PUBLISH_SCRIPT });
  redis.defineCommand('fanoutRead', { numberOfKeys: 2, lua: READ_SCRIPT });
  redis.defineCommand('fanoutHeartbeat', { numberOfKeys: 1, lua: HEARTBEAT_SCRIPT });
  redis.defineCommand('fanoutPresence', { numberOfKeys: 2, lua: LIST_SCRIPT });
  redis.defineCommand('fanoutOccupancy', { numberOfKeys: 3, lua: OCCUPANCY_SCRIPT });
  return redis as ScriptRedis;
}

/**
 * A failed Redis call as the channel layer sees it. The text reaches clients (`unavailable`
 * answers), so it never carries Redis's own error text (a script's internals, a key name): only
 * whether Redis could not be reached or refused the command; the error itself stays in `cause`.
 */
function unavailable(err: unknown): BusUnavailableError {
  if (err instanceof BusUnavailableError) return err;
  const refused = err instanceof Error && err.name === 'ReplyError';
  return new BusUnavailableError(refused ? 'the redis store refused the request' : 'the redis store is not reachable', { cause: err });
}

/** How long a publish waits for the first connection. */
const FIRST_CONNECT_WAIT_MS = 3000;

export interface RedisStoreOptions {
  readonly prefix: string;
  readonly historySize: number;
  readonly historyTtl: number;
}

export class RedisChannelStore implements ChannelStore {
  readonly kind = 'redis';

  /** The connection was ready once: not ready now means it dropped. */
  private wasReady = false;

  constructor(private readonly redis: ScriptRedis, private readonly options: RedisStoreOptions) {
    if (redis.status === 'ready') this.wasReady = true;
    else redis.once('ready', () => (this.wasReady = true));
  }

  private keys(channel: string): [string, string] {
    const base = `${this.options.prefix}:ch:{${channel}}`;
    return [`${base}:meta`, `${base}:log`];
  }

  async publish(message: OutgoingMessage): Promise<PublishResult> {
    await this.ready();
    const { historySize, historyTtl } = this.options;
    const once = message.once;
    let result: [number, string, number];
    try {
      result = await this.redis.fanoutPublish(
        ...this.keys(message.channel),
        `${this.options.prefix}:ch:{${message.channel}}:once`,
        newEpoch(),
        Math.ceil(historyTtl),
        historySize,
        message.topic,
        message.head,
        message.data,
        once?.source ?? '',
        once?.position ?? 0,
        historyTtl > 0 ? Math.max(Math.ceil(historyTtl), ONCE_MARKS_TTL_S) : 0,
        EMPTY_EPOCH_TTL_S,
      );
    } catch (err) {
      throw unavailable(err);
    }
    const [offset, epoch, duplicate] = result;
    return duplicate === 1 ? { offset, epoch, duplicate: true } : { offset, epoch };
  }

  /**
   * A publish is sent only on a ready connection, never queued: a queued command that timed out
   * is still sent once Redis is back, and a publish answered `unavailable` must not be stored
   * later (the client would retry it). While the first connection is being made it waits for it
   * (a little); after a drop it fails at once. Reads may wait in the queue: a late read is harmless.
   */
  private async ready(): Promise<void> {
    const { redis } = this;
    if (redis.status === 'ready') return;
    if (this.wasReady || redis.status === 'end') throw unavailable(new Error(`redis is ${redis.status}`));
    let timer: NodeJS.Timeout | undefined;
    let onReady: (() => void) | undefined;
    try {
      await new Promise<void>((resolve, reject) => {
        onReady = resolve;
        redis.once('ready', onReady);
        timer = setTimeout(() => reject(unavailable(new Error(`redis is ${redis.status}`))), FIRST_CONNECT_WAIT_MS);
      });
    } finally {
      clearTimeout(timer);
      if (onReady) redis.off('ready', onReady);
    }
  }

  async read(channel: string, options: ReadOptions = {}): Promise<ReadResult> {
    const { historySize, historyTtl } = this.options;
    const since = options.since;
    // Offsets start at 1: nothing is older than 1 (and the script's range needs an id above 0-0).
    const noneOlder = options.before !== undefined && options.before <= 1;
    let reply: Array<number | string>;
    try {
      reply = await this.redis.fanoutRead(
        ...this.keys(channel),
        newEpoch(),
        Math.ceil(historyTtl),
        historySize,
        since ? 'since' : 'limit',
        since ? since.offset : noneOlder ? 0 : Math.min(options.limit ?? historySize, historySize),
        since ? since.epoch : '',
        options.fence ? options.fence.topic : '',
        options.fence?.payload ?? '',
        options.before === undefined || noneOlder ? '' : options.before,
        options.maxBytes ?? 0,
        EMPTY_EPOCH_TTL_S,
      );
    } catch (err) {
      throw unavailable(err);
    }
    const messages: StoredMessage[] = [];
    for (let i = 4; i + 1 < reply.length; i += 2) {
      messages.push({ offset: parseInt(String(reply[i]), 10), data: String(reply[i + 1]) });
    }
    return { offset: Number(reply[0]), epoch: String(reply[1]), covered: reply[2] === 1, more: reply[3] === 1, messages };
  }

  async close(): Promise<void> {}
}

export interface RedisPresenceOptions {
  readonly prefix: string;
  readonly node: string;
  /** Seconds without a heartbeat after which a node's clients leave. */
  readonly ttl: number;
  readonly logError: (err: Error, what: string) => void;
  /** Called when this node was swept as dead (e.g. Redis was away) and must register its clients again. */
  readonly rejoin: () => void;
}

export class RedisPresenceStore implements PresenceStore {
  readonly kind = 'redis';
  private timer: NodeJS.Timeout | undefined;
  private onDeparted: DepartedHandler = () => {};
  private beats = 0;
  private readonly nodesKey: string;

  constructor(private readonly redis: ScriptRedis, private readonly options: RedisPresenceOptions) {
    this.nodesKey = `${options.prefix}:presence:nodes`;
  }

  private hash(channel: string): string {
    return `${this.options.prefix}:presence:{${channel}}`;
  }

  join(channel: string, entry: PresenceEntry): Promise<void> {
    return this.writes.join(channel, entry);
  }

  leave(channel: string, client: string): Promise<void> {
    return this.writes.leave(channel, client);
  }

  /** Joins and leaves that could not be written (Redis away), replayed when it is back. */
  private readonly writes = new PresenceWrites((channel, client, entry) => this.write(channel, client, entry), unavailable);

  private async write(channel: string, client: string, entry: PresenceEntry | undefined): Promise<void> {
    if (!entry) {
      await this.redis.hdel(this.hash(channel), client);
      return;
    }
    const value = JSON.stringify({ node: this.options.node, user: entry.user });
    await this.redis
      .multi()
      .hset(this.hash(channel), client, value)
      .sadd(`${this.options.prefix}:presence:node:${this.options.node}`, channel)
      .exec();
  }

  async list(channel: string): Promise<PresenceEntry[]> {
    let reply: string[];
    try {
      reply = await this.redis.fanoutPresence(this.hash(channel), this.nodesKey, this.options.ttl * 1000);
    } catch (err) {
      throw unavailable(err);
    }
    const out: PresenceEntry[] = [];
    for (let i = 0; i + 1 < reply.length; i += 2) out.push({ client: reply[i]!, user: userOf(reply[i + 1]!) });
    return out;
  }

  start(onDeparted: DepartedHandler): void {
    this.onDeparted = onDeparted;
    this.run();
  }

  /** --webhook: the sweeps' occupancy crossings go to `onSwept` (heartbeats start if presence did not start them). */
  watchOccupancy(onSwept: (events: readonly OccupancyEvent[]) => void): void {
    this.onSwept = onSwept;
    this.run();
  }

  private onSwept: (events: readonly OccupancyEvent[]) => void = () => {};
  private running = false;

  private run(): void {
    if (this.running) return;
    this.running = true;
    // Leftovers of an earlier process with this node id go first, then the node registers; again
    // at once after every reconnect, so a node is listed as soon as it can be reached.
    let first = true;
    const onReady = (): void => {
      const begin = first ? this.beat('leave') : Promise.resolve();
      first = false;
      this.writes.replay();
      void begin.then(() => this.beat('beat'));
    };
    this.redis.on('ready', onReady);
    if (this.redis.status === 'ready') onReady();
    this.timer = setInterval(() => void this.beat('beat'), Math.max(TIMINGS.presenceHeartbeatMinMs, this.options.ttl * 1000 * TIMINGS.presenceHeartbeatFraction));
    this.timer.unref();
  }

  private async beat(mode: 'beat' | 'leave'): Promise<void> {
    let reply: [number, string[], string[]];
    try {
      reply = await this.redis.fanoutHeartbeat(this.nodesKey, this.options.prefix, this.options.node, this.options.ttl * 1000, mode);
    } catch (err) {
      this.options.logError(err as Error, 'presence heartbeat failed');
      return;
    }
    const [added, departed, crossings] = reply;
    if (mode === 'beat' && added === 1 && this.beats++ > 0) this.options.rejoin();
    for (let i = 0; i + 2 < departed.length; i += 3) {
      const channel = String(departed[i]);
      this.onDeparted(channel, { client: String(departed[i + 1]), user: userOf(String(departed[i + 2])) });
    }
    const events: OccupancyEvent[] = [];
    for (let i = 0; i + 2 < crossings.length; i += 3) events.push(occupancyEvent(crossings[i]!, crossings[i + 1]!, crossings[i + 2]!));
    if (events.length > 0) this.onSwept(events);
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    if (this.redis.status === 'ready') await this.beat('leave');
  }
}

function userOf(value: string): string | null {
  try {
    const parsed = JSON.parse(value) as { user?: unknown };
    return typeof parsed.user === 'string' ? parsed.user : null;
  } catch {
    return null;
  }
}

function occupancyEvent(name: string, channel: string, user: string): OccupancyEvent {
  return { name: name as OccupancyEvent['name'], channel, ...(user !== '' ? { user } : {}) };
}

/** Occupancy in Redis (see the top of this file); liveness and the sweep come with the presence heartbeats. */
export class RedisOccupancyStore implements OccupancyStore {
  readonly kind = 'redis';

  constructor(
    private readonly redis: ScriptRedis,
    private readonly presence: RedisPresenceStore,
    private readonly options: { readonly prefix: string; readonly node: string },
  ) {}

  async update(change: OccupancyChange): Promise<OccupancyEvent[]> {
    const { prefix, node } = this.options;
    const { channel } = change;
    const args: Array<string | number> = [node, channel, change.subscribers];
    for (const [user, count] of change.users) args.push(user, count);
    let reply: string[];
    try {
      reply = await this.redis.fanoutOccupancy(`${prefix}:wh:occ:{${channel}}`, `${prefix}:wh:users:{${channel}}`, `${prefix}:wh:node:${node}`, ...args);
    } catch (err) {
      throw unavailable(err);
    }
    const events: OccupancyEvent[] = [];
    for (let i = 0; i + 1 < reply.length; i += 2) events.push(occupancyEvent(reply[i]!, channel, reply[i + 1]!));
    return events;
  }

  start(onSwept: (events: readonly OccupancyEvent[]) => void): void {
    this.presence.watchOccupancy(onSwept);
  }
}
