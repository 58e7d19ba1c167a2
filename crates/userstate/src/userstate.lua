#!lua name=__LIBRARY__
-- redrec-userstate: the server-side half of the user-feature store (a Redis Function library).
--
-- `__APPLY__` applies a batch of already validated events atomically: it first checks every
-- item exists (nothing is written when one does not), then applies the events one by one.
-- On a single node it reads the items from their hashes; for a user-state cluster the caller
-- reads them from the catalog first and passes their fields in ARGV (the item hashes live on
-- another deployment, and every key of one call must share the user's slot), keeps the
-- idempotency markers in a per-user hash with a TTL per field, and counts popularity itself.
-- `__FOLD__` moves pending popularity deltas from the popularity zset into the indexed item
-- hashes. The Rust side (crates/userstate/src/store.rs) builds KEYS/ARGV; the layout is
-- documented in docs/FEATURES.md. Time always comes from the caller (ARGV), never from TIME,
-- so tests can inject a clock and replicas replay deterministically.

local HEADER = 23      -- ARGV slots before the per-event blocks
local STRIDE_ARGV = 9  -- per event: type, item_id, weight, has_event_id, price_flag, cart_op, pop_weight, at_ms, event_id
local STRIDE_KEYS = 8  -- per event: user, session, seen, recent, cart, item, event marker, buys
local ITEM_ARGV = 6    -- per item passed in (after the events): id, vector, category, brand, price, cf vector
-- Purchase-history scores are kept relative to a per-user reference time; past this many
-- half-lives from it, the scores are rescaled and the reference moved (keeps them finite).
local HISTORY_RESCALE = 64
local CHUNK = 128      -- floats per struct.pack/unpack call (keeps the Lua stack small)

-- struct format strings by chunk length, built once per call of the library
local FORMATS = {}
local function format_for(k)
  local f = FORMATS[k]
  if f == nil then
    f = '<' .. string.rep('f', k)
    FORMATS[k] = f
  end
  return f
end

local function unpack_vec(blob)
  if blob == nil or type(blob) ~= 'string' or #blob == 0 or #blob % 4 ~= 0 then
    return nil
  end
  local n = #blob / 4
  local out = nil
  local pos = 1
  local done = 0
  while done < n do
    local k = math.min(CHUNK, n - done)
    local vals = { struct.unpack(format_for(k), blob, pos) }
    pos = vals[k + 1]
    if out == nil then
      vals[k + 1] = nil
      out = vals
    else
      for i = 1, k do
        out[done + i] = vals[i]
      end
    end
    done = done + k
  end
  return out
end

local function pack_vec(v)
  local parts = {}
  local n = #v
  local done = 0
  while done < n do
    local k = math.min(CHUNK, n - done)
    parts[#parts + 1] = struct.pack(format_for(k), unpack(v, done + 1, done + k))
    done = done + k
  end
  return table.concat(parts)
end

-- Scales v to unit length in place; false when v has (numerically) zero length.
local function normalize(v)
  local s = 0
  for i = 1, #v do
    s = s + v[i] * v[i]
  end
  if s <= 1e-24 then
    return false
  end
  local inv = 1 / math.sqrt(s)
  for i = 1, #v do
    v[i] = v[i] * inv
  end
  return true
end

-- Weighted, normalised EMA step, in place on `prev` when it exists. An event of weight w counts
-- as |w| steps of size alpha, so its effective rate is 1 - (1 - alpha)^|w|; a negative weight
-- moves the vector away from the item. Returns the vector to store, or nil for no change.
local function ema(prev, item, alpha, w)
  if prev == nil or #prev ~= #item then
    if w > 0 then
      return item
    end
    return nil
  end
  local a = 1 - math.pow(1 - alpha, math.abs(w))
  if w < 0 then
    a = -a
  end
  local keep = 1 - math.abs(a)
  local s = 0
  for i = 1, #prev do
    local x = keep * prev[i] + a * item[i]
    prev[i] = x
    s = s + x * x
  end
  if s <= 1e-24 then
    return nil
  end
  local inv = 1 / math.sqrt(s)
  for i = 1, #prev do
    prev[i] = prev[i] * inv
  end
  return prev
end

-- User and session vectors touched by the current call, decoded once and written back once
-- (`flush_vectors`) however many of the batch's events move them: a batch of one user's
-- history costs one HGET + unpack and one pack + HSET per vector instead of one per event.
-- Reset at the start of every call; the function is atomic, so nobody sees the deferral.
local VECTORS = {}

local function update_vector(key, field, item_vec, alpha, w)
  if item_vec == nil or w == 0 then
    return
  end
  local id = key .. '\0' .. field
  local e = VECTORS[id]
  if e == nil then
    e = { key = key, field = field, vec = unpack_vec(redis.call('HGET', key, field)) }
    VECTORS[id] = e
  end
  local nextv = ema(e.vec, item_vec, alpha, w)
  if nextv ~= nil then
    if nextv == item_vec then
      -- first vector: a copy, since later steps update it in place and the item's is shared
      nextv = {}
      for i = 1, #item_vec do
        nextv[i] = item_vec[i]
      end
    end
    e.vec = nextv
    e.dirty = true
  end
end

local function flush_vectors()
  for _, e in pairs(VECTORS) do
    if e.dirty then
      redis.call('HSET', e.key, e.field, pack_vec(e.vec))
    end
  end
  VECTORS = {}
end

-- Affinity fields hold "<score>|<updated_ms>": the score as of its own last update. On write the
-- score is decayed to `now` by 2^(-(now - updated)/half_life) and the weight added. An event
-- older than the stored stamp is decayed to the stamp instead, so the result never depends on
-- the order events arrive in: score(t) = sum of w_i * 2^(-(t - t_i)/half_life).
local function bump_affinity(key, field, w, now, half_life)
  local score = w
  local stamp = now
  local raw = redis.call('HGET', key, field)
  if raw then
    local s, t = string.match(raw, '^(.-)|(.*)$')
    s = tonumber(s)
    t = tonumber(t)
    if s ~= nil and t ~= nil then
      if now >= t then
        score = s * math.pow(2, -(now - t) / half_life) + w
      else
        score = s + w * math.pow(2, -(t - now) / half_life)
        stamp = t
      end
    end
  end
  redis.call('HSET', key, field, string.format('%.17g|%.0f', score, stamp))
end

-- Timestamps only move forward, whatever order events arrive in.
local function set_max(key, field, now)
  local prev = tonumber(redis.call('HGET', key, field) or '')
  if prev == nil or now > prev then
    redis.call('HSET', key, field, string.format('%.0f', now))
  end
end

-- Purchase history as forward decay (Cormode et al., 2009): a purchase at time t adds
-- 2^((t - ref) / half_life) to the item's score, where ref (`buys_ref_ms` in the user hash) is
-- fixed per user. Every score then decays by the same factor as time passes, so the order of
-- the sorted set is the order of decayed purchase counts at any reading time, and the read side
-- gets the decayed count as score * 2^((ref - now) / half_life). No per-read or per-write decay
-- of the other members is needed; only when t runs far past ref are all scores rescaled once.
local function bump_history(user, buys, item_id, at, half_life, cap)
  local ref = tonumber(redis.call('HGET', user, 'buys_ref_ms') or '')
  if ref == nil then
    ref = at
    redis.call('HSET', user, 'buys_ref_ms', string.format('%.0f', ref))
  end
  local e = (at - ref) / half_life
  if e > HISTORY_RESCALE then
    local factor = math.pow(2, -e)
    local all = redis.call('ZRANGE', buys, 0, -1, 'WITHSCORES')
    for i = 1, #all, 2 do
      redis.call('ZADD', buys, tonumber(all[i + 1]) * factor, all[i])
    end
    ref = at
    redis.call('HSET', user, 'buys_ref_ms', string.format('%.0f', ref))
    e = 0
  end
  redis.call('ZINCRBY', buys, math.pow(2, e), item_id)
  redis.call('ZREMRANGEBYRANK', buys, 0, -(cap + 1))
end

-- One item's fields for the event step from their stored values (false or '' when absent):
-- normalised text and collaborative vectors (nil when absent or zero), category, brand and a
-- finite price.
local function item_fields(vec_blob, cat, brand, price_raw, cf_blob)
  local vec = unpack_vec(vec_blob)
  if vec ~= nil and not normalize(vec) then
    vec = nil
  end
  -- most items have no collaborative vector (too few buyers): nil leaves the cf vectors alone
  local cf = unpack_vec(cf_blob)
  if cf ~= nil and not normalize(cf) then
    cf = nil
  end
  if not cat or cat == '' then
    cat = nil
  end
  if not brand or brand == '' then
    brand = nil
  end
  -- tonumber accepts "nan" and "inf" (strtod): only finite prices enter the price band
  local price = nil
  if price_raw then
    price = tonumber(price_raw)
  end
  if price ~= nil and (price ~= price or price == math.huge or price == -math.huge) then
    price = nil
  end
  return { vec = vec, cf = cf, cat = cat, brand = brand, price = price }
end

-- One item's fields read from its hash; nil when the item does not exist.
local function read_item(item_key, f_vec, f_cat, f_brand, f_price, f_cf)
  if redis.call('EXISTS', item_key) == 0 then
    return nil
  end
  local h
  if f_cf ~= '' then
    h = redis.call('HMGET', item_key, f_vec, f_cat, f_brand, f_price, f_cf)
  else
    h = redis.call('HMGET', item_key, f_vec, f_cat, f_brand, f_price)
  end
  return item_fields(h[1], h[2], h[3], h[4], h[5])
end

local function apply_events(keys, args)
  local batch_now = tonumber(args[1])
  local n = tonumber(args[2])
  local f_vec, f_cat, f_brand, f_price = args[3], args[4], args[5], args[6]
  local session_alpha = tonumber(args[7])
  local long_alpha = tonumber(args[8])
  local half_life = tonumber(args[9])
  local session_ttl = tonumber(args[10])
  local seen_cap = tonumber(args[11])
  local seen_ttl = tonumber(args[12])
  local recent_cap = tonumber(args[13])
  local cart_ttl = tonumber(args[14])
  local idem_ttl = tonumber(args[15])
  local history_half_life = tonumber(args[16])
  local history_cap = tonumber(args[17])
  -- collaborative space: the item field holding `cf_vector` ('' = off) and its two EMA rates
  local f_cf = args[18]
  local cf_session_alpha = tonumber(args[19])
  local cf_long_alpha = tonumber(args[20])
  -- '1': popularity goes to the zset KEYS[1]; '0': the caller counts it (cluster layout)
  local count_pop = args[21] == '1'
  -- 'key': one marker key per event id (SET NX PX); 'field': a field of the per-user marker
  -- hash, with its own TTL (HSETNX + HPEXPIRE, Redis 7.4+)
  local marker_fields = args[22] == 'field'
  -- items passed in after the events (0: read from the item keys)
  local passed = tonumber(args[23])
  local pop_key = keys[1]

  VECTORS = {}
  -- Phase 1: read every item (once per distinct item of the batch); an unknown item rejects
  -- the whole batch before any write.
  local items = {}
  if passed > 0 then
    local by_id = {}
    local base = HEADER + n * STRIDE_ARGV
    for i = 0, passed - 1 do
      local b = base + i * ITEM_ARGV
      by_id[args[b + 1]] = item_fields(args[b + 2], args[b + 3], args[b + 4], args[b + 5], args[b + 6])
    end
    for j = 0, n - 1 do
      local item = by_id[args[HEADER + j * STRIDE_ARGV + 2]]
      if item == nil then
        return { 'unknown_item', j }
      end
      items[j] = item
    end
  else
    local by_key = {}
    for j = 0, n - 1 do
      local k = 2 + j * STRIDE_KEYS
      local item_key = keys[k + 5]
      local item = by_key[item_key]
      if item == nil then
        item = read_item(item_key, f_vec, f_cat, f_brand, f_price, f_cf)
        if item == nil then
          return { 'unknown_item', j }
        end
        by_key[item_key] = item
      end
      items[j] = item
    end
  end

  -- Phase 2: apply.
  local reply = { 'ok', 0 }
  local applied = 0
  for j = 0, n - 1 do
    local k = 2 + j * STRIDE_KEYS
    local user, session, seen, recent, cart, evt, buys =
      keys[k], keys[k + 1], keys[k + 2], keys[k + 3], keys[k + 4], keys[k + 6], keys[k + 7]
    local a = HEADER + j * STRIDE_ARGV
    local etype, item_id = args[a + 1], args[a + 2]
    local w = tonumber(args[a + 3])
    local has_eid = args[a + 4] == '1'
    local price_flag = args[a + 5] == '1'
    local cart_op = args[a + 6]
    local pop_w = tonumber(args[a + 7])
    -- the event's own time (bulk imports), else the batch's clock
    local now = tonumber(args[a + 8]) or batch_now
    local item = items[j]

    local fresh = true
    if has_eid and marker_fields then
      local event_id = args[a + 9]
      fresh = redis.call('HSETNX', evt, event_id, '1') == 1
      if fresh then
        redis.call('HPEXPIRE', evt, idem_ttl, 'FIELDS', 1, event_id)
      end
    elseif has_eid then
      fresh = redis.call('SET', evt, '1', 'PX', idem_ttl, 'NX')
    end
    if not fresh then
      reply[#reply + 1] = j
    else
      applied = applied + 1
      -- vectors
      update_vector(session, 'vec', item.vec, session_alpha, w)
      update_vector(user, 'lt_vec', item.vec, long_alpha, w)
      update_vector(session, 'cf_vec', item.cf, cf_session_alpha, w)
      update_vector(user, 'cf_lt_vec', item.cf, cf_long_alpha, w)
      -- affinities
      if item.cat then
        bump_affinity(user, 'cat:' .. item.cat, w, now, half_life)
      end
      if item.brand then
        bump_affinity(user, 'brand:' .. item.brand, w, now, half_life)
      end
      -- counters
      redis.call('HINCRBY', user, 'n:' .. etype, 1)
      redis.call('HINCRBY', session, 'n:' .. etype, 1)
      -- price band (Welford)
      if price_flag and item.price ~= nil then
        local c = tonumber(redis.call('HGET', user, 'pb_n') or '0')
        local mean = tonumber(redis.call('HGET', user, 'pb_mean') or '0')
        local m2 = tonumber(redis.call('HGET', user, 'pb_m2') or '0')
        c = c + 1
        local delta = item.price - mean
        mean = mean + delta / c
        m2 = m2 + delta * (item.price - mean)
        redis.call('HSET', user, 'pb_n', c, 'pb_mean', string.format('%.17g', mean),
          'pb_m2', string.format('%.17g', m2))
      end
      -- recent interactions (newest first, capped)
      local entry = { item_id = item_id, event = etype, at_ms = now }
      if item.cat then
        entry.category = item.cat
      end
      redis.call('LPUSH', recent, cjson.encode(entry))
      redis.call('LTRIM', recent, 0, recent_cap - 1)
      -- seen set (score = ms, capped by count and age)
      redis.call('ZADD', seen, 'GT', now, item_id)
      redis.call('ZREMRANGEBYSCORE', seen, '-inf', '(' .. string.format('%.0f', now - seen_ttl))
      redis.call('ZREMRANGEBYRANK', seen, 0, -(seen_cap + 1))
      redis.call('PEXPIRE', seen, seen_ttl)
      -- cart
      if cart_op == 'add' then
        redis.call('SADD', cart, item_id)
        redis.call('PEXPIRE', cart, cart_ttl)
      elseif cart_op == 'remove' then
        redis.call('SREM', cart, item_id)
      end
      -- purchase history: only purchases count, one per purchase line whatever its weight
      if etype == 'purchase' then
        bump_history(user, buys, item_id, now, history_half_life, history_cap)
      end
      -- item popularity lives in its own zset, folded into the index in batches
      if count_pop and pop_w > 0 then
        redis.call('ZINCRBY', pop_key, pop_w, item_id)
      end
      -- bookkeeping and TTLs: session state slides, long-term state is kept
      redis.call('HSETNX', session, 'started_ms', string.format('%.0f', now))
      set_max(session, 'updated_ms', now)
      redis.call('PEXPIRE', session, session_ttl)
      redis.call('HSETNX', user, 'created_ms', string.format('%.0f', now))
      set_max(user, 'updated_ms', now)
    end
  end
  flush_vectors()
  reply[2] = applied
  return reply
end

-- KEYS: popularity zset, then one item key per member. ARGV: popularity field, then members.
local function fold_popularity(keys, args)
  local pop_key = keys[1]
  local field = args[1]
  local folded, dropped = 0, 0
  for i = 2, #keys do
    local member = args[i]
    local delta = redis.call('ZSCORE', pop_key, member)
    if delta then
      if redis.call('EXISTS', keys[i]) == 1 then
        redis.call('HINCRBYFLOAT', keys[i], field, delta)
        folded = folded + 1
      else
        dropped = dropped + 1
      end
      redis.call('ZREM', pop_key, member)
    end
  end
  return { folded, dropped }
end

redis.register_function('__APPLY__', apply_events)
redis.register_function('__FOLD__', fold_popularity)
