"""The Redis outbox's Lua scripts, one per change, each atomic on the server.

Every script starts with `PRELUDE`: the state table (`states.TRANSITIONS`, the one
the SQLite outbox follows) as Lua tables, the clock (ARGV[2], or Redis's `TIME` when
empty), key helpers, and `place`, which moves a row between the indexes of its states
and keeps `counts:<sink>`, `open` and `expiry:<sink>` in step. `redis_outbox` names
the keys; the ARGV layout is written above each script.
"""

from __future__ import annotations

from proxy.conversions.funnel import KEEP_SECONDS
from proxy.conversions.outbox import HOUR_OUTCOMES, HOURS_KEEP, ROW_FIELDS
from proxy.conversions.states import OPEN_STATES, TRANSITIONS, RowState

FIELDS = ROW_FIELDS[1:]          # a row hash's fields; the id is its key's member
_S = RowState
# Which index a state's rows sit in, and the field that scores them there.
_INDEX = {_S.PENDING: ("due", "next_attempt_at"), _S.RETRY: ("due", "next_attempt_at"),
          _S.LEASED: ("leased", "lease_expires_at"), _S.SENT: ("sent", "updated_at"),
          _S.DEAD: ("dead", "")}


def _lua_set(states: frozenset[RowState]) -> str:
    return "{" + ",".join(f"{s.value}=true" for s in sorted(states)) + "}"


_TABLES = "\n".join([
    "local SRC, TGT = {}, {}",
    *(f"SRC.{a.value} = {_lua_set(src)}; TGT.{a.value} = '{tgt.value}'"
      for a, (src, tgt) in TRANSITIONS.items()),
    f"local OPEN = {_lua_set(OPEN_STATES)}",
    "local INDEX = {" + ",".join(f"{s.value}={{'{k}','{f}'}}" for s, (k, f) in _INDEX.items())
    + "}",
    "local HOUR_KIND = {" + ",".join(f"{a}='{k}'" for a, k in HOUR_OUTCOMES.items()) + "}",
])

PRELUDE = _TABLES + r"""
local P = ARGV[1]
local now
if ARGV[2] ~= '' then now = tonumber(ARGV[2]) else
  local t = redis.call('TIME'); now = tonumber(t[1]) + tonumber(t[2]) / 1000000 end
local function rk(m) return P .. 'row:' .. m end
-- Count a mark per sink and hour for the operators; kept 30 days (HOURS_KEEP).
local function hour_count(sink, kind, n)
  if n > 0 then
    local hk = P .. 'sinkhours:' .. tostring(math.floor(now / 3600) * 3600)
    redis.call('HINCRBY', hk, sink .. '|' .. kind, n)
    redis.call('EXPIRE', hk, """ + str(int(HOURS_KEEP)) + r""")
  end
end
local function ik(state, sink)
  local kind = INDEX[state][1]
  if kind == 'due' or kind == 'leased' then return P .. kind .. ':' .. sink end
  return P .. kind
end
-- Move row m of sink from state old (nil: a new row) to new; the hash is already updated.
local function place(m, sink, old, new)
  if old then
    redis.call('ZREM', ik(old, sink), m)
    redis.call('HINCRBY', P .. 'counts:' .. sink, old, -1)
  end
  local field = INDEX[new][2]
  local score = tonumber(m)
  if field ~= '' then score = tonumber(redis.call('HGET', rk(m), field)) end
  redis.call('ZADD', ik(new, sink), score, m)
  redis.call('HINCRBY', P .. 'counts:' .. sink, new, 1)
  local was_open = old and OPEN[old]
  if OPEN[new] and not was_open then
    redis.call('ZADD', P .. 'open', tonumber(m), m)
    redis.call('ZADD', P .. 'expiry:' .. sink, redis.call('HGET', rk(m), 'expires_at'), m)
  elseif was_open and not OPEN[new] then
    redis.call('ZREM', P .. 'open', m)
    redis.call('ZREM', P .. 'expiry:' .. sink, m)
  end
end
"""

_FIELD_LIST = ",".join(f"'{f}'" for f in FIELDS)

# ARGV: P now event_id dedupe_key window event_json event_time max_age keep_ms
#       result deduped_result channel origin visitor rule event_name funnel_day
#       n_cells cell_field * n_cells, sink...
# Besides the rows: `ev:<event_id>` (the event, its result, its rows), `events` and
# `vev:<visitor>` (event ids by time), rule hits, and the funnel's day hash.
SUBMIT = PRELUDE + r"""
local ekey = P .. 'event:' .. ARGV[3]
local seen = redis.call('GET', ekey)
if seen then return {0, seen} end
local ncells = tonumber(ARGV[18])
local result, queued, deduped = ARGV[10], {}, false
for i = 19 + ncells, #ARGV do queued[#queued + 1] = ARGV[i] end
if ARGV[4] ~= '' then
  local dkey = P .. 'dedupe:' .. ARGV[4]
  if tonumber(redis.call('GET', dkey) or '0') > now then
    result = ARGV[11]; queued = {}; deduped = true
  end
  if #queued > 0 then   -- only a conversion that went somewhere counts as fired
    local window = tonumber(ARGV[5])
    redis.call('SET', dkey, now + window, 'PX', math.max(1, math.ceil(window * 1000)))
  end
end
local expires = math.min(tonumber(ARGV[7]), now) + tonumber(ARGV[8])
local members = {}
for _, sink in ipairs(queued) do
  local m = string.format('%015d', redis.call('INCR', P .. 'seq'))
  redis.call('HSET', rk(m), 'sink', sink, 'event_id', ARGV[3], 'event', ARGV[6],
    'state', 'pending', 'attempts', 0, 'next_attempt_at', now, 'created_at', now,
    'expires_at', expires, 'updated_at', now)
  redis.call('SADD', P .. 'sinks', sink)
  place(m, sink, nil, 'pending')
  members[#members + 1] = m
end
redis.call('SET', ekey, result, 'PX', ARGV[9])
local evkey = P .. 'ev:' .. ARGV[3]
redis.call('HSET', evkey, 'event', ARGV[6], 'result', result, 'created_at', now,
           'rows', table.concat(members, ','))
redis.call('PEXPIRE', evkey, ARGV[9])
redis.call('ZADD', P .. 'events', now, ARGV[3])
if ARGV[14] ~= '' then
  local vkey = P .. 'vev:' .. ARGV[14]
  redis.call('ZADD', vkey, now, ARGV[3])
  redis.call('ZREMRANGEBYSCORE', vkey, '-inf', now - tonumber(ARGV[9]) / 1000)
  redis.call('PEXPIRE', vkey, ARGV[9])
end
if ARGV[15] ~= '' then
  redis.call('HINCRBY', P .. 'rulehits', ARGV[15], 1)
  redis.call('HSET', P .. 'rulelast', ARGV[15], now)
  redis.call('HSET', P .. 'ruleevent', ARGV[15], ARGV[16])
end
if ncells > 0 and not deduped then
  local fkey = P .. 'funnel:' .. ARGV[17]
  for i = 19, 18 + ncells do redis.call('HINCRBY', fkey, ARGV[i], 1) end
  redis.call('EXPIRE', fkey, """ + str(int(KEEP_SECONDS)) + r""")
end
if #queued > 0 and ARGV[12] ~= '' then
  redis.call('PUBLISH', ARGV[12], ARGV[13] .. '\n' .. table.concat(queued, '\n'))
end
return {1, result}
"""

# ARGV: P now sink owner limit lease_seconds
LEASE = PRELUDE + r"""
local sink, owner, limit = ARGV[3], ARGV[4], tonumber(ARGV[5])
local expired = 0
for _, m in ipairs(redis.call('ZRANGEBYSCORE', P .. 'expiry:' .. sink, '-inf', now)) do
  local st = redis.call('HGET', rk(m), 'state')
  if st and SRC.expire[st] then
    redis.call('HSET', rk(m), 'state', TGT.expire, 'last_error', 'expired', 'updated_at', now)
    redis.call('HDEL', rk(m), 'lease_owner', 'lease_expires_at')
    place(m, sink, st, TGT.expire)
    expired = expired + 1
  end
end
hour_count(sink, HOUR_KIND.expire, expired)
local cands = {}
local due = redis.call('ZRANGEBYSCORE', P .. 'due:' .. sink, '-inf', now, 'WITHSCORES',
                       'LIMIT', 0, limit)
for i = 1, #due, 2 do cands[#cands + 1] = {due[i], tonumber(due[i + 1]), 'lease'} end
for _, m in ipairs(redis.call('ZRANGEBYSCORE', P .. 'leased:' .. sink, '-inf', now,
                              'LIMIT', 0, limit)) do
  cands[#cands + 1] = {m, tonumber(redis.call('HGET', rk(m), 'next_attempt_at')), 'reclaim'}
end
table.sort(cands, function(a, b)
  if a[2] ~= b[2] then return a[2] < b[2] end
  return a[1] < b[1] end)
local out = {expired}
for _, c in ipairs(cands) do
  if #out > limit then break end
  local m, action = c[1], c[3]
  local st = redis.call('HGET', rk(m), 'state')
  if st and SRC[action][st] then
    redis.call('HSET', rk(m), 'state', TGT[action], 'lease_owner', owner,
               'lease_expires_at', now + tonumber(ARGV[6]), 'updated_at', now)
    redis.call('HINCRBY', rk(m), 'attempts', 1)
    place(m, sink, st, TGT[action])
    local row = redis.call('HMGET', rk(m), """ + _FIELD_LIST + r""")
    table.insert(row, 1, m)
    out[#out + 1] = row
  end
end
return out
"""

# ARGV: P now action owner delay n_pairs [field value]... member...
MOVE = PRELUDE + r"""
local action, owner = ARGV[3], ARGV[4]
local n = tonumber(ARGV[6])
local changed = 0
for i = 7 + 2 * n, #ARGV do
  local m = ARGV[i]
  local row = redis.call('HMGET', rk(m), 'state', 'lease_owner', 'sink')
  if row[1] and row[2] == owner and SRC[action][row[1]] then
    redis.call('HSET', rk(m), 'state', TGT[action], 'updated_at', now)
    redis.call('HDEL', rk(m), 'lease_owner', 'lease_expires_at')
    for j = 7, 6 + 2 * n, 2 do redis.call('HSET', rk(m), ARGV[j], ARGV[j + 1]) end
    if ARGV[5] ~= '' then
      redis.call('HSET', rk(m), 'next_attempt_at', now + tonumber(ARGV[5])) end
    place(m, row[3], row[1], TGT[action])
    hour_count(row[3], HOUR_KIND[action], 1)
    changed = changed + 1
  end
end
return changed
"""

# ARGV: P now owner
RELEASE = PRELUDE + r"""
local changed = 0
for _, sink in ipairs(redis.call('SMEMBERS', P .. 'sinks')) do
  for _, m in ipairs(redis.call('ZRANGE', P .. 'leased:' .. sink, 0, -1)) do
    local row = redis.call('HMGET', rk(m), 'state', 'lease_owner', 'attempts')
    if row[2] == ARGV[3] and SRC.release[row[1]] then
      redis.call('HSET', rk(m), 'state', TGT.release, 'next_attempt_at', now, 'updated_at', now,
                 'attempts', math.max(tonumber(row[3]) - 1, 0))
      redis.call('HDEL', rk(m), 'lease_owner', 'lease_expires_at')
      place(m, sink, row[1], TGT.release)
      changed = changed + 1
    end
  end
end
return changed
"""

# ARGV: P now sink-or-empty member-or-empty
REQUEUE = PRELUDE + r"""
local changed = 0
local dead
if ARGV[4] ~= '' then dead = {ARGV[4]} else dead = redis.call('ZRANGE', P .. 'dead', 0, -1) end
for _, m in ipairs(dead) do
  local row = redis.call('HMGET', rk(m), 'state', 'sink', 'expires_at')
  if SRC.requeue[row[1]] and tonumber(row[3]) > now and (ARGV[3] == '' or ARGV[3] == row[2]) then
    redis.call('HSET', rk(m), 'state', TGT.requeue, 'attempts', 0, 'next_attempt_at', now,
               'updated_at', now)
    redis.call('HDEL', rk(m), 'dead_body')
    place(m, row[2], row[1], TGT.requeue)
    changed = changed + 1
  end
end
return changed
"""

# ARGV: P now sent_keep event_keep. Dedupe keys, event ids and events expire by
# themselves (PX); the `events` index is trimmed here.
PURGE = PRELUDE + r"""
redis.call('ZREMRANGEBYSCORE', P .. 'events', '-inf', now - tonumber(ARGV[4]))
local old = redis.call('ZRANGEBYSCORE', P .. 'sent', '-inf', now - tonumber(ARGV[3]))
for _, m in ipairs(old) do
  local sink = redis.call('HGET', rk(m), 'sink')
  if sink then redis.call('HINCRBY', P .. 'counts:' .. sink, 'sent', -1) end
  redis.call('DEL', rk(m))
  redis.call('ZREM', P .. 'sent', m)
end
return #old
"""

# ARGV: P now. The age of the oldest open row, by its own clock ("0" when none). Ids
# grow with submit time, so the lowest id in `open` is the oldest.
OLDEST = PRELUDE + r"""
local first = redis.call('ZRANGE', P .. 'open', 0, 0)
if #first == 0 then return '0' end
local created = tonumber(redis.call('HGET', rk(first[1]), 'created_at'))
return tostring(math.max(now - created, 0))
"""
