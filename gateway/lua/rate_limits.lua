-- Every rate limit of one request, checked and counted in one round trip.
--
-- KEYS: two per limit (for the sliding window its previous and current
-- counters; for the other strategies the same key twice).
-- ARGV[1]: the caller's clock (seconds, float), so moving-window entries are
-- the same timestamps the limits library writes; then four per limit:
-- strategy ("moving" | "fixed" | "sliding"), amount, expiry (seconds), and
-- "hit" (count this request) or "test" (only check that one more would fit).
--
-- Limits are evaluated in order and evaluation stops at the first breach, like
-- flask-limiter did. Returns, for each limit evaluated: {breached (0|1),
-- remaining, reset (epoch seconds, as a string: Redis would truncate a number)}.

local now = tonumber(ARGV[1])
local results = {}

-- Index of the oldest entry still in the window (entries are newest first), or nil.
local function oldest_index(key, high, target)
    local low, found = 0, nil
    while low <= high do
        local mid = math.floor((low + high) / 2)
        local value = tonumber(redis.call('lindex', key, mid))
        if value and value >= target then
            found = mid
            low = mid + 1
        else
            high = mid - 1
        end
    end
    return found
end

local function moving(key, amount, expiry, hit)
    local entry = redis.call('lindex', key, amount - 1)
    local fits = not (entry and tonumber(entry) >= now - expiry)
    if fits and hit then
        redis.call('lpush', key, now)
        redis.call('ltrim', key, 0, amount - 1)
        redis.call('expire', key, expiry)
    end
    local index = oldest_index(key, amount - 1, now - expiry)
    if index == nil then
        return fits, amount, now + expiry
    end
    local oldest = tonumber(redis.call('lindex', key, index))
    return fits, amount - (index + 1), oldest + expiry
end

local function fixed(key, amount, expiry, hit)
    local count
    if hit then
        count = redis.call('incrby', key, 1)
        if count == 1 then
            redis.call('expire', key, expiry)
        end
    else
        count = tonumber(redis.call('get', key)) or 0
    end
    local fits = (hit and count <= amount) or (not hit and count < amount)
    local ttl = redis.call('ttl', key)
    return fits, math.max(0, amount - count), now + math.max(ttl, 0)
end

-- The limits library's sliding window counter (times in milliseconds).
local function sliding(previous, current, amount, expiry_s, hit)
    local expiry = expiry_s * 1000
    local current_ttl = tonumber(redis.call('pttl', current))
    if current_ttl > 0 and current_ttl < expiry then
        -- The current window is over: it becomes the previous one.
        redis.call('rename', current, previous)
        redis.call('set', current, 0, 'PX', current_ttl + expiry)
    end
    local previous_count = tonumber(redis.call('get', previous)) or 0
    local previous_ttl = math.max(tonumber(redis.call('pttl', previous)) or 0, 0)
    local current_count = tonumber(redis.call('get', current)) or 0
    current_ttl = math.max(tonumber(redis.call('pttl', current)) or 0, 0)
    local weighted = previous_count * previous_ttl / expiry + current_count
    local fits = math.floor(weighted) + 1 <= amount
    if fits and hit then
        if redis.call('exists', current) == 1 then
            redis.call('incrby', current, 1)
        else
            redis.call('set', current, 1, 'PX', expiry * 2)
            current_ttl = expiry * 2
        end
        current_count = current_count + 1
        weighted = weighted + 1
    end
    local remaining = math.max(0, amount - math.floor(weighted))
    if previous_count == 0 and current_count == 0 then
        return fits, remaining, now
    end
    local reset_in = math.huge
    if previous_count > 0 then
        reset_in = (previous_ttl / 1000) % (expiry_s / previous_count)
    end
    if current_count > 0 then
        reset_in = math.min(reset_in, (current_ttl / 1000) % expiry_s)
    end
    return fits, remaining, now + reset_in
end

for i = 1, #KEYS / 2 do
    local base = 1 + (i - 1) * 4
    local strategy = ARGV[base + 1]
    local amount = tonumber(ARGV[base + 2])
    local expiry = tonumber(ARGV[base + 3])
    local hit = ARGV[base + 4] == 'hit'
    local first, second = KEYS[2 * i - 1], KEYS[2 * i]
    local fits, remaining, reset
    if strategy == 'moving' then
        fits, remaining, reset = moving(first, amount, expiry, hit)
    elseif strategy == 'fixed' then
        fits, remaining, reset = fixed(first, amount, expiry, hit)
    else
        fits, remaining, reset = sliding(first, second, amount, expiry, hit)
    end
    results[i] = {fits and 0 or 1, remaining, string.format('%.6f', reset)}
    if not fits then
        break
    end
end
return results
