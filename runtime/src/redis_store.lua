-- polvo's quota store on Redis: the GCRA of runtime/src/gcra.rs, in Lua.
--
-- One script, one atomic step per call: ARGV[1] names the operation. Each bucket is a hash
-- holding one TAT per limit (t1..tn), blocked_until (b), shift_total (s), pace in parts per
-- million (p), the change counter (q) and the successes since the last bare 429 (c).
-- Times are microseconds since the epoch on the Redis server's clock (TIME); Lua numbers
-- are doubles, which hold such integers exactly (ns would not fit in 53 bits).
--
-- Buckets are described after the fixed arguments of an operation as
--   n, then n times: interval_us, burst, period_us
-- (the interval at full pace, rounded up; the period sets how long an idle key lives).
-- Keep this file in step with gcra.rs: every function below mirrors one there.

local FULL_PACE = 1000000
local MIN_PACE = 500000
local PACE_CUT_PPM = 20000
local PACE_TRIM_PPM = 500
local REPEAT_WITHIN = 200
local PACE_RECOVERY = 100
local U32_MAX = 4294967295
-- Idle keys outlive their last useful time by their longest period and this margin (µs).
local MARGIN = 60000000

-- Redis before 5 replicates scripts verbatim unless told otherwise, and TIME is not
-- deterministic; later versions always replicate effects and ignore this.
if redis.replicate_commands then
  redis.replicate_commands()
end

-- ARGV[1] is the operation, or `operation@now` with the time in microseconds from the
-- epoch when the store reads a clock of its own (RedisStoreBuilder::clock).
local OP, GIVEN_NOW = string.match(ARGV[1], '^([%a_]+)@?(%d*)$')

local function now_us()
  if GIVEN_NOW and GIVEN_NOW ~= '' then
    return tonumber(GIVEN_NOW)
  end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

-- Integers as exact decimal text: tostring would round past 14 digits.
local function int(x)
  return string.format('%.0f', x)
end

local function read_buckets(from)
  local buckets = {}
  local pos = from
  for k = 1, #KEYS do
    local n = tonumber(ARGV[pos])
    pos = pos + 1
    local limits = {}
    for i = 1, n do
      limits[i] = {
        interval = tonumber(ARGV[pos]),
        burst = tonumber(ARGV[pos + 1]),
        period = tonumber(ARGV[pos + 2]),
      }
      pos = pos + 3
    end
    buckets[k] = { key = KEYS[k], limits = limits }
  end
  return buckets, pos
end

-- States are shared by key, so a key named twice in one call is one bucket, as in memory.
local states = {}

local function load(bucket)
  local cached = states[bucket.key]
  if cached then
    return cached
  end
  local fields = { 'b', 's', 'p', 'q', 'c' }
  for i = 1, #bucket.limits do
    fields[#fields + 1] = 't' .. i
  end
  local raw = redis.call('HMGET', bucket.key, unpack(fields))
  local state = {
    blocked = tonumber(raw[1]) or 0,
    shift = tonumber(raw[2]) or 0,
    pace = tonumber(raw[3]) or FULL_PACE,
    seq = tonumber(raw[4]) or 0,
    clean = tonumber(raw[5]) or REPEAT_WITHIN,
    tats = {},
  }
  for i = 1, #bucket.limits do
    state.tats[i] = tonumber(raw[5 + i]) or 0
  end
  states[bucket.key] = state
  return state
end

local function save(bucket, state, now)
  local args = { 'b', int(state.blocked), 's', int(state.shift), 'p', int(state.pace),
    'q', int(state.seq), 'c', int(state.clean) }
  local latest = math.max(state.blocked, now)
  local longest = 0
  for i = 1, #bucket.limits do
    args[#args + 1] = 't' .. i
    args[#args + 1] = int(state.tats[i])
    latest = math.max(latest, state.tats[i])
    longest = math.max(longest, bucket.limits[i].period)
  end
  redis.call('HSET', bucket.key, unpack(args))
  local ttl_ms = math.ceil((latest - now + longest + MARGIN) / 1000)
  redis.call('PEXPIRE', bucket.key, int(ttl_ms))
end

-- BucketState::interval
local function interval(state, limit)
  if state.pace >= FULL_PACE then
    return limit.interval
  end
  return math.ceil(limit.interval * FULL_PACE / state.pace)
end

-- BucketState::earliest: the start, or nil and the index of a limit that never fits.
local function earliest(state, limits, cost, now)
  local start = math.max(now, state.blocked)
  for i = 1, #limits do
    local limit = limits[i]
    if cost > limit.burst then
      return nil, i
    end
    -- At the configured interval: see BucketState::earliest.
    local slack = (limit.burst - cost) * limit.interval
    start = math.max(start, state.tats[i] - slack)
  end
  return start
end

-- BucketState::commit
local function commit(state, limits, cost, start)
  for i = 1, #limits do
    state.tats[i] = math.max(state.tats[i], start) + cost * interval(state, limits[i])
  end
  state.seq = state.seq + 1
end

-- BucketState::pause
local function pause(state, now, till, slow_down)
  local from = math.max(state.blocked, now)
  if till > from then
    local shift = till - from
    for i = 1, #state.tats do
      state.tats[i] = math.max(state.tats[i], now) + shift
    end
    state.shift = state.shift + shift
    state.blocked = till
  end
  local before = state.pace
  if slow_down then
    if state.clean < REPEAT_WITHIN then
      local cut = math.floor(state.pace * PACE_CUT_PPM / FULL_PACE)
      state.pace = math.max(state.pace - cut, MIN_PACE)
    end
    state.clean = 0
  end
  state.seq = state.seq + 1
  return state.pace < before
end

-- BucketState::available
local function available(state, limits, i, now)
  local limit = limits[i]
  if state.blocked > now then
    return 0
  end
  local step = math.max(interval(state, limit), 1)
  local horizon = now + limit.burst * step
  local free = math.max(horizon - math.max(state.tats[i], now), 0)
  return math.min(math.floor(free / step), limit.burst)
end

local ops = {}

-- reserve_masked with every target: ARGV cost, max_wait_us (-1: none), buckets.
-- Replies {0, wait, shift..., seq..., deferred flag...} (one of each per bucket),
-- {1, wait, bucket} for TooLong,
-- {2, bucket, limit} for Never (indices from 0).
function ops.reserve()
  local cost = tonumber(ARGV[2])
  local max_wait = tonumber(ARGV[3])
  local buckets = read_buckets(4)
  local now = now_us()
  local starts = {}
  local start, decider = now, 1
  for k, bucket in ipairs(buckets) do
    local at, never = earliest(load(bucket), bucket.limits, cost, now)
    if not at then
      return { 2, k - 1, never - 1 }
    end
    starts[k] = at
    if at > start then
      start, decider = at, k
    end
  end
  if max_wait >= 0 and start - now > max_wait then
    return { 1, start - now, decider - 1 }
  end

  local reply = { 0, start - now }
  local deferred = {}
  for k, bucket in ipairs(buckets) do
    local state = load(bucket)
    if start == now or starts[k] == start or k > 64 then
      commit(state, bucket.limits, cost, start)
      save(bucket, state, now)
      deferred[k] = 0
    else
      deferred[k] = 1
    end
  end
  for _, bucket in ipairs(buckets) do
    reply[#reply + 1] = load(bucket).shift
  end
  for _, bucket in ipairs(buckets) do
    reply[#reply + 1] = load(bucket).seq
  end
  for k = 1, #buckets do
    reply[#reply + 1] = deferred[k]
  end
  return reply
end

-- MemoryStore::release_at: ARGV cost, then per bucket its ticket seq and whether it was
-- charged (1) or deferred (0), then the buckets. Replies {1} when refunded.
function ops.release()
  local cost = tonumber(ARGV[2])
  local n = #KEYS
  local buckets = read_buckets(3 + 2 * n)
  for k, bucket in ipairs(buckets) do
    local charged = ARGV[3 + 2 * (k - 1) + 1] == '1'
    if charged and load(bucket).seq ~= tonumber(ARGV[3 + 2 * (k - 1)]) then
      return { 0 }
    end
  end
  local now = now_us()
  for k, bucket in ipairs(buckets) do
    local charged = ARGV[3 + 2 * (k - 1) + 1] == '1'
    local state = load(bucket)
    -- BucketState::refund, which checks the seq again for a key named twice.
    if charged and state.seq == tonumber(ARGV[3 + 2 * (k - 1)]) then
      for i = 1, #bucket.limits do
        local spend = cost * interval(state, bucket.limits[i])
        state.tats[i] = math.max(state.tats[i] - spend, 0)
      end
      state.seq = state.seq + 1
      save(bucket, state, now)
    end
  end
  return { 1 }
end

-- Each bucket's pause total (the caller compares them with its ticket's).
function ops.shift()
  local buckets = read_buckets(2)
  local totals = {}
  for k, bucket in ipairs(buckets) do
    totals[k] = load(bucket).shift
  end
  return totals
end

-- MemoryStore::pause_at: ARGV delay_us, slow_down (0 or 1), buckets.
function ops.pause()
  local delay = tonumber(ARGV[2])
  local slow_down = ARGV[3] == '1'
  local buckets = read_buckets(4)
  local now = now_us()
  local slowed = 0
  for _, bucket in ipairs(buckets) do
    if pause(load(bucket), now, now + delay, slow_down) then
      slowed = 1
    end
  end
  for _, bucket in ipairs(buckets) do
    save(bucket, load(bucket), now)
  end
  return { slowed }
end

-- BucketState::delay for one bucket: ARGV shift_us, trim (0 or 1), bucket.
function ops.delay()
  local shift = tonumber(ARGV[2])
  local trim = ARGV[3] == '1'
  local bucket = read_buckets(4)[1]
  if shift <= 0 and not trim then
    return { 1 }
  end
  local state = load(bucket)
  if trim then
    local cut = math.floor(state.pace * PACE_TRIM_PPM / FULL_PACE)
    state.pace = math.max(state.pace - cut, MIN_PACE)
  end
  shift = math.max(shift, 0)
  for i = 1, #state.tats do
    state.tats[i] = state.tats[i] + shift
  end
  state.shift = state.shift + shift
  state.seq = state.seq + 1
  save(bucket, state, now_us())
  return { 1 }
end

-- BucketState::adopt for one bucket: ARGV remaining, reset_after_us (-1: none), the index
-- of the limit the report matches (from 0; -1: none), bucket.
function ops.adopt()
  local remaining = tonumber(ARGV[2])
  local reset_after = tonumber(ARGV[3])
  local index = tonumber(ARGV[4]) + 1
  local bucket = read_buckets(5)[1]
  local now = now_us()
  local state = load(bucket)
  if remaining == 0 and reset_after >= 0 then
    pause(state, now, now + reset_after, false)
    save(bucket, state, now)
    return { 1 }
  end
  if index < 1 or index > #bucket.limits then
    return { 0 }
  end
  if remaining < available(state, bucket.limits, index, now) then
    local limit = bucket.limits[index]
    state.tats[index] = now + (limit.burst - remaining) * interval(state, limit)
    state.seq = state.seq + 1
    save(bucket, state, now)
  end
  return { 1 }
end

-- BucketState::recover for each bucket. A bucket at full pace with enough successes since
-- its last bare 429 cannot change, so it is left unwritten.
function ops.recover()
  local buckets = read_buckets(2)
  local now = now_us()
  for _, bucket in ipairs(buckets) do
    local state = load(bucket)
    if state.pace < FULL_PACE or state.clean < REPEAT_WITHIN then
      state.clean = math.min(state.clean + 1, U32_MAX)
      if state.pace < FULL_PACE then
        state.pace = math.min(state.pace + PACE_RECOVERY, FULL_PACE)
        state.seq = state.seq + 1
      end
      save(bucket, state, now)
    end
  end
  return { 1 }
end

-- MemoryStore::view_at: {blocked_for_us, pace, available per limit...}.
function ops.view()
  local bucket = read_buckets(2)[1]
  local now = now_us()
  local state = load(bucket)
  local reply = { math.max(state.blocked - now, 0), state.pace }
  for i = 1, #bucket.limits do
    reply[#reply + 1] = available(state, bucket.limits, i, now)
  end
  return reply
end

local op = OP and ops[OP]
if not op then
  return redis.error_reply('polvo: unknown operation ' .. tostring(ARGV[1]))
end
return op()
