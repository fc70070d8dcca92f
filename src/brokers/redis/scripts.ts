/**
 * The Lua scripts of the Redis stores (brokers/redis/stores.ts, where the key layout is described), and
 * the connection they are registered on. Redis runs each script as one atomic step: that is what
 * makes offsets, history and delivery order agree, and each presence or occupancy crossing be
 * reported once.
 */
import type { Redis } from 'ioredis';
import { luaMessagePayload } from '../../protocol/message-frame.js';

/**
 * ensure(): the channel's epoch and offset, creating (or replacing) the epoch when the channel
 * has none or its history vanished (flushed, evicted, expired). A new epoch that holds no message
 * yet expires after --history-ttl, or EMPTY_EPOCH_TTL_S (redis.ts) with --history-ttl 0, so a
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
 * KEYS: meta, log, marks, idempotency key. ARGV: candidate epoch, ttl, size, topic, head, data,
 * once source ('' for none), once position, marks ttl, empty epoch ttl, idempotency window
 * seconds (0 for none). Returns {offset, epoch, duplicate}: with a source whose mark is at or
 * past the position, nothing is stored or published (OutgoingMessage.once); with an idempotency
 * key that is there, nothing is written at all and the answer is the first publish's offset and
 * epoch, which the key holds (`<offset> <epoch>`) until its window ends (OutgoingMessage.idempotency).
 */
const PUBLISH_SCRIPT = `${ENSURE_EPOCH}
local window = tonumber(ARGV[11])
if window > 0 then
  local first = redis.call('GET', KEYS[4])
  if first then
    local space = string.find(first, ' ', 1, true)
    return {tonumber(string.sub(first, 1, space - 1)), string.sub(first, space + 1), 1}
  end
end
local ttl, size = tonumber(ARGV[2]), tonumber(ARGV[3])
local epoch, current = ensure(KEYS[1], KEYS[2], ARGV[1], ttl, size, tonumber(ARGV[10]))
if ARGV[7] ~= '' then
  local mark = redis.call('HGET', KEYS[3], ARGV[7])
  if mark and tonumber(ARGV[8]) <= tonumber(mark) then return {current, epoch, 1} end
  redis.call('HSET', KEYS[3], ARGV[7], ARGV[8])
  if tonumber(ARGV[9]) > 0 then redis.call('EXPIRE', KEYS[3], ARGV[9]) end
end
local offset = redis.call('HINCRBY', KEYS[1], 'offset', 1)
if window > 0 then redis.call('SET', KEYS[4], offset .. ' ' .. epoch, 'EX', window) end
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

/** A connection with the scripts registered (see {@link withScripts}). */
export type ScriptRedis = Redis & {
  fanoutPublish(meta: string, log: string, marks: string, idempotency: string, ...args: Array<string | Buffer | number>): Promise<[number, string, number]>;
  fanoutRead(meta: string, log: string, ...args: Array<string | number | Buffer>): Promise<Array<number | string>>;
  fanoutHeartbeat(nodes: string, ...args: Array<string | number>): Promise<[number, string[], string[]]>;
  fanoutOccupancy(occ: string, users: string, nodeSet: string, ...args: Array<string | number>): Promise<string[]>;
  fanoutPresence(hash: string, nodes: string, ttl: number): Promise<string[]>;
};

/** Registers the scripts on a connection (EVALSHA with EVAL fallback). */
export function withScripts(redis: Redis): ScriptRedis {
  redis.defineCommand('fanoutPublish', { numberOfKeys: 4, lua: PUBLISH_SCRIPT });
  redis.defineCommand('fanoutRead', { numberOfKeys: 2, lua: READ_SCRIPT });
  redis.defineCommand('fanoutHeartbeat', { numberOfKeys: 1, lua: HEARTBEAT_SCRIPT });
  redis.defineCommand('fanoutPresence', { numberOfKeys: 2, lua: LIST_SCRIPT });
  redis.defineCommand('fanoutOccupancy', { numberOfKeys: 3, lua: OCCUPANCY_SCRIPT });
  return redis as ScriptRedis;
}

