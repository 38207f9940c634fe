//! The Lua scripts that make each queue step atomic on the server.
//!
//! Every script that changes state a retry could repeat (`PUT`, `FINISH`, `TASK_DONE`) starts
//! with the same de-duplication preamble: `KEYS[last]` holds `"<seq>:<result>"` of the last step
//! this connection slot applied, so a step re-sent after a lost reply returns the first answer
//! instead of applying twice.

use redis::Script;
use std::sync::OnceLock;

/// `GET last`; if it records this `seq`, return its result. Expects `seq = ARGV[1]` and the
/// `last` key name in the local `lastkey`.
const DEDUP: &str = r#"
local seq = ARGV[1]
local prev = redis.call('GET', lastkey)
if prev and string.sub(prev, 1, #seq + 1) == seq .. ':' then
  return string.sub(prev, #seq + 2)
end
"#;

/// PUT — KEYS: items, space, unfinished, last. ARGV: seq, maxsize, joinable (0/1), item...
/// Appends as many items as fit under `maxsize` (all if 0) and returns how many, as a string.
/// A joinable queue counts them as unfinished. While room is left a token sits in `space`, so
/// a blocked putter's `BLPOP` wakes and passes the room on.
const PUT: &str = r#"
local maxsize = tonumber(ARGV[2])
local n = #ARGV - 3
local len = redis.call('LLEN', KEYS[1])
if maxsize > 0 then
  if len >= maxsize then return '0' end
  if len + n > maxsize then n = maxsize - len end
end
local i = 4
while i < 4 + n do
  local j = math.min(i + 3999, 3 + n)
  redis.call('RPUSH', KEYS[1], unpack(ARGV, i, j))
  i = j + 1
end
if ARGV[3] == '1' then redis.call('INCRBY', KEYS[3], n) end
if maxsize > 0 and len + n < maxsize then
  redis.call('LPUSH', KEYS[2], '1')
  redis.call('LTRIM', KEYS[2], 0, 0)
end
redis.call('SET', lastkey, seq .. ':' .. n, 'EX', 3600)
return tostring(n)
"#;

/// GET — KEYS: items, proc, space. ARGV: max, maxsize, already (items a BLMOVE just moved).
/// Moves up to `max` items from the head of `items` to the tail of this consumer's `proc` list
/// and returns them; a bounded queue gets a `space` token when anything left it.
const GET: &str = r#"
local max = tonumber(ARGV[1])
local out = {}
if max <= 0 then
  -- only the token below (LRANGE 0 -1 would take the whole list)
elseif max == 1 then
  local v = redis.call('LMOVE', KEYS[1], KEYS[2], 'LEFT', 'RIGHT')
  out = v and {v} or {}
else
  out = redis.call('LRANGE', KEYS[1], 0, max - 1)
  if #out > 0 then
    redis.call('LTRIM', KEYS[1], #out, -1)
    for i = 1, #out, 4000 do
      redis.call('RPUSH', KEYS[2], unpack(out, i, math.min(i + 3999, #out)))
    end
  end
end
if tonumber(ARGV[2]) > 0 and #out + tonumber(ARGV[3]) > 0 then
  redis.call('LPUSH', KEYS[3], '1')
  redis.call('LTRIM', KEYS[3], 0, 0)
end
return out
"#;

/// FINISH — KEYS: proc, items, space, last. ARGV: seq, keep, n, take, drop, consume (0/1),
/// maxsize.
/// `proc` should be `keep` older items then the `n` just got. Returns '0' if it is not (a
/// reaper took them back: the caller must not use them), else '1' after: the `n - take - drop`
/// newest go back to the head of `items` in order, `drop` (a garbage item) is removed, and for
/// a plain queue (`consume`) the taken items leave `proc` (then `keep` is 0). A bounded queue
/// gets a `space` token (the get came straight from `BLMOVE`, which leaves none).
const FINISH: &str = r#"
local keep, n, take, drop = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local r = '1'
if redis.call('LLEN', KEYS[1]) ~= keep + n then
  r = '0'
else
  for i = 1, n - take - drop do redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'LEFT') end
  if drop > 0 then redis.call('RPOP', KEYS[1]) end
  if ARGV[6] == '1' then redis.call('DEL', KEYS[1]) end
  if tonumber(ARGV[7]) > 0 then
    redis.call('LPUSH', KEYS[3], '1')
    redis.call('LTRIM', KEYS[3], 0, 0)
  end
end
redis.call('SET', lastkey, seq .. ':' .. r, 'EX', 3600)
return r
"#;

/// TASK_DONE — KEYS: proc, unfinished, done, last. ARGV: seq.
/// Acknowledges the oldest item of this consumer; '0' if `proc` was empty (a reaper had taken
/// it back). When nothing is unfinished any more a token in `done` wakes the joiners.
const TASK_DONE: &str = r#"
local r = '0'
if redis.call('LPOP', KEYS[1]) then
  r = '1'
  if redis.call('DECR', KEYS[2]) <= 0 then
    redis.call('SET', KEYS[2], '0')
    redis.call('LPUSH', KEYS[3], '1')
    redis.call('LTRIM', KEYS[3], 0, 0)
  end
end
redis.call('SET', lastkey, seq .. ':' .. r, 'EX', 3600)
return r
"#;

/// RECOVER — KEYS: proc, items. ARGV: keep.
/// Moves the newest items of `proc` beyond the oldest `keep` back to the head of `items`, in
/// order: what a get moved but never handed to its caller (a lost reply, a timed-out wait).
const RECOVER: &str = r#"
local moved = 0
while redis.call('LLEN', KEYS[1]) > tonumber(ARGV[1]) do
  redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'LEFT')
  moved = moved + 1
end
return moved
"#;

/// REAP — KEYS: consumers, items. ARGV: key prefix.
/// Every consumer whose lease has expired gives its `proc` items back to the head of `items`
/// (oldest first) and leaves the set. Keys are derived from the prefix, all in one hash slot.
const REAP: &str = r#"
local moved = 0
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', ARGV[1] .. 'lease:' .. id) == 0 then
    local p = ARGV[1] .. 'proc:' .. id
    while redis.call('LMOVE', p, KEYS[2], 'RIGHT', 'LEFT') do moved = moved + 1 end
    redis.call('SREM', KEYS[1], id)
  end
end
return moved
"#;

/// OPEN — KEYS: meta. ARGV: maxsize, kind, format.
/// Creates the queue's description if missing; returns the stored one.
const OPEN: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'maxsize', ARGV[1], 'kind', ARGV[2], 'format', ARGV[3], 'version', '1')
end
return redis.call('HMGET', KEYS[1], 'maxsize', 'kind', 'format', 'version')
"#;

/// RENEW — KEYS: meta, lease, consumers. ARGV: lease ms, consumer id.
/// Renews this consumer's lease, unless the queue was destroyed (then nothing is recreated).
const RENEW: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('SET', KEYS[2], '1', 'PX', ARGV[1])
  redis.call('SADD', KEYS[3], ARGV[2])
end
return 0
"#;

/// The loaded scripts, built once per process (each hashes its source).
pub(crate) struct Scripts {
    pub put: Script,
    pub get: Script,
    pub finish: Script,
    pub task_done: Script,
    pub recover: Script,
    pub reap: Script,
    pub open: Script,
    pub renew: Script,
    /// FINISH's full source, for a pipelined `EVAL`.
    pub finish_src: String,
}

/// The scripts; a deduplicating one finds its `last` key as its last KEYS entry.
pub(crate) fn scripts() -> &'static Scripts {
    static S: OnceLock<Scripts> = OnceLock::new();
    S.get_or_init(|| {
        let src = |body: &str| format!("local lastkey = KEYS[#KEYS]\n{DEDUP}{body}");
        let dedup = |body: &str| Script::new(&src(body));
        Scripts {
            put: dedup(PUT),
            get: Script::new(GET),
            finish: dedup(FINISH),
            task_done: dedup(TASK_DONE),
            recover: Script::new(RECOVER),
            reap: Script::new(REAP),
            open: Script::new(OPEN),
            renew: Script::new(RENEW),
            finish_src: src(FINISH),
        }
    })
}
