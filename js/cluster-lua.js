// The Lua scripts of rollcall/redis: each change of a room is one atomic
// script (state, sequence, fan-out), so that Redis orders every
// room's changes once for all nodes. Member and change texts are the
// engine's (see src/engine/cluster.rs); the scripts read a member's `id`
// and `n` (node) and never re-encode one, so presence data reaches every
// node byte for byte. Times come from Redis's clock (TIME), never a node's.
//
// Room keys (one hash tag per room): KEYS[1] members HASH id -> member,
// KEYS[2] meta HASH e (epoch) / s (seq). No log is kept: a node that
// missed changes (a gap in seq) re-reads the room's set.

/** Lua helper: the room's epoch, created from Redis TIME (µs) when missing. */
const EPOCH = `
local function epoch(meta)
  local e = redis.call('HGET', meta, 'e')
  if not e then
    local t = redis.call('TIME')
    e = t[1] .. string.format('%06d', tonumber(t[2]))
    redis.call('HSET', meta, 'e', e)
  end
  return e
end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function publish(keys, channel, e, body)
  local s = redis.call('HINCRBY', keys[2], 's', 1)
  local change = '{"e":' .. e .. ',"s":' .. s .. ',' .. body .. '}'
  redis.call('PUBLISH', channel, change)
  return change
end
`;

/**
 * One local change. KEYS: members, meta, the node's room SET.
 * ARGV: op (join|update|leave|adopt|mark), member id, member text ('' for leave),
 * channel, time (ms, the origin's clock, for the event's timestamp),
 * room. Returns the change, or nil when a leave finds
 * nothing to remove.
 */
export const CHANGE = `${EPOCH}
local op, id, member = ARGV[1], ARGV[2], ARGV[3]
local e = epoch(KEYS[2])
if op == 'adopt' or op == 'mark' then
  -- A member resumed on this node (re-owned), or whose connection entered
  -- or left grace: stored, and its new text published un-numbered, with no
  -- event (if it is still there).
  if redis.call('HEXISTS', KEYS[1], id) == 1 then
    redis.call('HSET', KEYS[1], id, member)
    if op == 'adopt' then redis.call('SADD', KEYS[3], ARGV[6]) end
    redis.call('PUBLISH', ARGV[4], '{"mark":' .. member .. '}')
    return false
  end
  if op == 'mark' then return false end
  op = 'join'
end
if op == 'leave' then
  member = redis.call('HGET', KEYS[1], id)
  if not member then return false end
  redis.call('HDEL', KEYS[1], id)
else
  if redis.call('HEXISTS', KEYS[1], id) == 1 then op = 'update' else op = 'join' end
  redis.call('HSET', KEYS[1], id, member)
  redis.call('SADD', KEYS[3], ARGV[6])
end
return publish(KEYS, ARGV[4], e, '"op":"' .. op .. '","t":' .. ARGV[5] .. ',"m":' .. member)
`;

/** The room's whole set: {epoch, seq, member...}. KEYS: members, meta. */
export const SNAPSHOT = `${EPOCH}
local e = epoch(KEYS[2])
local s = redis.call('HGET', KEYS[2], 's') or '0'
local out = { e, s }
for _, m in ipairs(redis.call('HVALS', KEYS[1])) do out[#out + 1] = m end
return out
`;

/**
 * A node re-asserts its own members of one room (after Redis lost its
 * state, or a network blip): the room holds exactly ARGV[4..] of node
 * ARGV[1]. If anything changed, one `resync` change tells every node to
 * re-read the room (no leave or join storm). KEYS: members, meta, the
 * node's room SET. ARGV: node, channel, room, members... Returns 1 if it
 * changed something.
 */
export const REASSERT = `${EPOCH}
local node = ARGV[1]
local fresh = redis.call('EXISTS', KEYS[2]) == 0
local e = epoch(KEYS[2])
local want = {}
for i = 4, #ARGV do
  want[cjson.decode(ARGV[i]).id] = ARGV[i]
end
local changed = false
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if want[all[i]] == nil then
    local ok, m = pcall(cjson.decode, all[i + 1])
    if ok and m.n == node then
      redis.call('HDEL', KEYS[1], all[i])
      changed = true
    end
  end
end
for id, m in pairs(want) do
  if redis.call('HGET', KEYS[1], id) ~= m then
    redis.call('HSET', KEYS[1], id, m)
    changed = true
  end
end
if #ARGV >= 4 then redis.call('SADD', KEYS[3], ARGV[3]) end
if changed or fresh then
  publish(KEYS, ARGV[2], e, '"op":"resync"')
  return 1
end
return 0
`;

/**
 * The reaper, for one room of a dead node: removes each of its members
 * with a real leave (a new seq each, published). KEYS: members, meta.
 * ARGV: node, channel. Returns how many left.
 */
export const REAP = `${EPOCH}
local node = ARGV[1]
local all = redis.call('HGETALL', KEYS[1])
local n = 0
local e
for i = 1, #all, 2 do
  local ok, m = pcall(cjson.decode, all[i + 1])
  if ok and m.n == node then
    e = e or epoch(KEYS[2])
    redis.call('HDEL', KEYS[1], all[i])
    publish(KEYS, ARGV[2], e, '"op":"leave","t":' .. now_ms() .. ',"m":' .. all[i + 1])
    n = n + 1
  end
end
return n
`;

/**
 * A node's heartbeat, scored with Redis TIME. KEYS: nodes ZSET.
 * ARGV: node. Returns 1 if the node was registered (0: new, reaped, or
 * Redis lost its state: re-assert).
 */
export const BEAT = `${EPOCH}
local known = redis.call('ZSCORE', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[1], now_ms(), ARGV[1])
if known then return 1 end
return 0
`;

/** Nodes whose last beat is older than ARGV[1] ms by Redis TIME. KEYS: nodes ZSET. */
export const DEAD = `${EPOCH}
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. (now_ms() - tonumber(ARGV[1])))
`;

/**
 * Takes the reaper's lock for a dead node, once: KEYS: lock. ARGV: the
 * reaper's node, lock ms. Returns 1 if taken.
 */
export const LOCK = `
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0
`;

/**
 * After a node's rooms are reaped (or it shut down): forget it.
 * KEYS: nodes ZSET, the node's room SET. ARGV: node.
 */
export const FORGET = `
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2])
return 1
`;

/**
 * The node has no connection left in a room (so no member there): it
 * leaves its room SET. Runs after the members' leaves (same connection,
 * in order). KEYS: the node's room SET. ARGV: room.
 */
export const UNTRACK = `return redis.call('SREM', KEYS[1], ARGV[1])`;

/** The node's rooms (to reap them). KEYS: the node's room SET. */
export const ROOMS = `return redis.call('SMEMBERS', KEYS[1])`;

/** A connection in grace is resumable: KEYS: its resume key. ARGV: node, ms left. */
export const RESUMABLE = `
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
`;

/** Claims a resume token, once: returns the node that holds it, and forgets it. KEYS: its resume key. */
export const CLAIM = `
local node = redis.call('GET', KEYS[1])
if node then redis.call('DEL', KEYS[1]) end
return node
`;

/** KEYS: a channel. ARGV: the message. */
export const PUBLISH = `return redis.call('PUBLISH', KEYS[1], ARGV[1])`;

// ---- objects, providers and realm events (see src/engine/cluster_objects.rs)
//
// Realm keys (one hash tag per realm): KEYS[1] objects HASH id -> data
// (JSON text, '' for none), KEYS[2] meta HASH e (epoch) / s (seq). Beside
// them: the realms SET (realms holding objects), the providers HASH node ->
// its providers message (with its version).
// Every message goes on one objects channel, which every node follows.

/** Lua helper: a realm's change, numbered and published. */
const REALM = `
local function realm_change(meta, channel, realm, e, body)
  local s = redis.call('HINCRBY', meta, 's', 1)
  local change = '{"r":' .. cjson.encode(realm) .. ',"e":' .. e .. ',"s":' .. s .. ',' .. body .. '}'
  redis.call('PUBLISH', channel, change)
  return change
end
`;

/**
 * One object change. KEYS: objects, meta, realms SET. ARGV: op
 * (create|update|delete), id, data ('' for none), channel, time (ms, the
 * origin's clock), realm. A create of an existing object is an update (the
 * later write wins); an update or delete of a missing one is dropped
 * (returns nil): it was deleted first.
 */
export const OBJECT = `${EPOCH}${REALM}
local op, id, data = ARGV[1], ARGV[2], ARGV[3]
local exists = redis.call('HEXISTS', KEYS[1], id) == 1
if op == 'delete' then
  if not exists then return false end
  redis.call('HDEL', KEYS[1], id)
  if redis.call('HLEN', KEYS[1]) == 0 then redis.call('SREM', KEYS[3], ARGV[6]) end
  data = ''
else
  if op == 'update' and not exists then return false end
  if exists then op = 'update' else op = 'create' end
  redis.call('HSET', KEYS[1], id, data)
  redis.call('SADD', KEYS[3], ARGV[6])
end
if data == '' then data = 'null' end
local e = epoch(KEYS[2])
return realm_change(KEYS[2], ARGV[4], ARGV[6], e, '"op":"' .. op .. '","t":' .. ARGV[5] .. ',"id":' .. cjson.encode(id) .. ',"d":' .. data)
`;

/** A realm's objects: {epoch, seq, id, data, id, data, ...}. KEYS: objects, meta. */
export const REALM_SNAPSHOT = `${EPOCH}
local e = epoch(KEYS[2])
local out = { e, redis.call('HGET', KEYS[2], 's') or '0' }
for _, v in ipairs(redis.call('HGETALL', KEYS[1])) do out[#out + 1] = v end
return out
`;

/**
 * A node re-asserts the objects it holds in one realm after a reconnect:
 * only if Redis lost the realm (no meta, or an epoch other than the one the
 * node last read) is each set if missing (a later write wins over it); a
 * realm Redis still holds is the truth (an object another node deleted
 * while this one was away stays deleted). A realm Redis did not hold gets a
 * new epoch and one "resync" change: every node re-reads it (no storm of
 * creates). KEYS: objects, meta, realms SET. ARGV: channel, realm, the
 * epoch the node last read ('' if none), id, data, id, data, ...
 */
export const REASSERT_OBJECTS = `${EPOCH}${REALM}
local fresh = redis.call('EXISTS', KEYS[2]) == 0
local e = epoch(KEYS[2])
if not fresh and e == ARGV[3] then return 0 end
for i = 4, #ARGV, 2 do redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i + 1]) end
if #ARGV >= 4 then redis.call('SADD', KEYS[3], ARGV[2]) end
if fresh then
  realm_change(KEYS[2], ARGV[1], ARGV[2], e, '"op":"resync"')
  return 1
end
return 0
`;

/** The realms holding objects. KEYS: realms SET. */
export const REALMS = `return redis.call('SMEMBERS', KEYS[1])`;

/** Lua helper: Redis TIME in µs, as an exact integer string. */
const MICROS = `
local function micros()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
`;

/**
 * A node's provider set ('' : the node is gone), stored and published
 * with a version that only grows, even across a Redis that lost its state:
 * Redis TIME in µs, or one more than the stored one. KEYS: providers HASH.
 * ARGV: node, providers text or '', channel. Returns the message, or nil
 * when a gone node had nothing stored.
 */
export const PROVIDERS = `${MICROS}
local node, p = ARGV[1], ARGV[2]
local prev = redis.call('HGET', KEYS[1], node)
if p == '' and not prev then return false end
local last = 0
if prev then last = cjson.decode(prev).v end
local vs = string.format('%.0f', math.max(last + 1, micros()))
if p == '' then p = 'null' end
local message = '{"n":' .. cjson.encode(node) .. ',"v":' .. vs .. ',"p":' .. p .. '}'
if p == 'null' then redis.call('HDEL', KEYS[1], node) else redis.call('HSET', KEYS[1], node, message) end
redis.call('PUBLISH', ARGV[3], message)
return message
`;

/** Every node's providers: {at (Redis TIME, µs), message...}. KEYS: providers HASH. */
export const PROVIDERS_SNAPSHOT = `${MICROS}
local out = { string.format('%.0f', micros()) }
for _, m in ipairs(redis.call('HVALS', KEYS[1])) do out[#out + 1] = m end
return out
`;
