//! The Lua scripts behind every state operation. Each runs atomically on the one slot of an
//! upload's hash tag, so a check (exists, fence, expected lengths) and the change it guards can
//! never be separated by another writer.
//!
//! Every script takes `KEYS = [state, parts, tail, finals]` and replies with an array whose first element
//! is a marker: `ok` (followed by the result), or `notfound`, `fenced`, `mismatch`, `staging`, `set`,
//! `exists`. Markers rather than error replies, so that no Redis version's error wrapping can
//! blur them.

use std::sync::LazyLock;

use redis::Script;

/// Helpers shared by all scripts.
const PRELUDE: &str = r#"
local state, parts, tail, finals = KEYS[1], KEYS[2], KEYS[3], KEYS[4]

-- Fences are u64 in decimal without leading zeros: comparing length, then text, is exact,
-- where Lua's doubles would round tokens above 2^53.
local function older(a, b)
  if #a ~= #b then return #a < #b end
  return a < b
end

-- nil when a caller holding `fence` may change the upload, else the reply to return.
-- Nothing is written here: a call that fails must leave the upload as it was.
local function guard(fence)
  if redis.call('EXISTS', state) == 0 then return {'notfound'} end
  local seen = redis.call('HGET', state, 'fence')
  if seen and older(fence, seen) then return {'fenced'} end
  return nil
end

-- The state with the number of parts, not their ETags: a commit per part must not cost O(parts).
local function read()
  return {'ok', redis.call('HGETALL', state), redis.call('LLEN', parts),
          redis.call('STRLEN', tail)}
end

local function unset(field)
  local v = redis.call('HGET', state, field)
  return (not v) or v == ''
end
"#;

fn script(body: &str) -> Script {
    Script::new(&format!("{PRELUDE}\n{body}"))
}

/// `body` flagged to run while Redis is out of memory (`maxmemory` reached with `noeviction`).
/// Redis refuses the writes of unflagged scripts then, HSET included, so an upload could be
/// neither locked (its fence is recorded), nor finished, nor have a part committed: nothing
/// that frees memory could run. Only scripts that free memory or write a few bytes get the
/// flag; new uploads and tail appends are still refused. The flag needs Redis 7; older servers
/// get [`script`]'s (see `RedisState::connect`).
fn oom_safe(body: &str) -> Script {
    Script::new(&format!("#!lua flags=allow-oom\n{PRELUDE}\n{body}"))
}

/// A script in two forms: plain, and flagged to run while Redis is out of memory.
pub(crate) struct OomSafe {
    pub plain: Script,
    pub flagged: Script,
}

impl OomSafe {
    fn new(body: &str) -> Self {
        Self {
            plain: script(body),
            flagged: oom_safe(body),
        }
    }
}

/// ARGV: length (or ""), metadata JSON, part size, multipart id (or ""), finished (0/1),
/// expiry in Unix seconds (or ""), concatenation role as JSON (or ""), creation time in Unix
/// seconds (or ""), placement as JSON (or ""). Replies `ok` or `exists`.
pub(crate) static CREATE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
if redis.call('EXISTS', state) == 1 then return {'exists'} end
-- Leftovers of an earlier upload with this id must not become part of the new one.
redis.call('DEL', parts, tail, finals)
redis.call('HSET', state, 'v', '1', 'length', ARGV[1], 'metadata', ARGV[2],
           'part_size', ARGV[3], 'multipart', ARGV[4], 'finished', ARGV[5], 'fence', '0',
           'expires', ARGV[6], 'concat', ARGV[7], 'created', ARGV[8], 'placement', ARGV[9])
return {'ok'}
"#,
    )
});

/// No ARGV. Replies `ok, hash, number of parts, tail length` or `notfound`.
pub(crate) static GET: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
if redis.call('EXISTS', state) == 0 then return {'notfound'} end
return read()
"#,
    )
});

/// ARGV: fence. Records the fence; replies like [`GET`], or `fenced`. Runs when Redis is full:
/// every request on an upload starts here, a DELETE that would free memory too.
pub(crate) static LOAD: LazyLock<OomSafe> = LazyLock::new(|| {
    OomSafe::new(
        r#"
local refused = guard(ARGV[1])
if refused then return refused end
redis.call('HSET', state, 'fence', ARGV[1])
return read()
"#,
    )
});

/// No ARGV. Replies `ok, [ETags of parts 1..]` or `notfound`.
pub(crate) static ETAGS: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
if redis.call('EXISTS', state) == 0 then return {'notfound'} end
return {'ok', redis.call('LRANGE', parts, 0, -1)}
"#,
    )
});

/// ARGV: first and last byte (inclusive, as GETRANGE takes them), fence (or "" for an
/// unfenced read; nothing is recorded). Replies `ok, bytes`, `notfound` or `fenced`.
pub(crate) static READ_TAIL: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
if ARGV[3] ~= '' then
  local refused = guard(ARGV[3])
  if refused then return refused end
elseif redis.call('EXISTS', state) == 0 then
  return {'notfound'}
end
return {'ok', redis.call('GETRANGE', tail, ARGV[1], ARGV[2])}
"#,
    )
});

/// ARGV: fence, multipart id. Replies `ok`, `notfound`, `fenced` or `set`. Runs when Redis is
/// full: an upload's first part, which frees its tail, needs it.
pub(crate) static SET_MULTIPART: LazyLock<OomSafe> = LazyLock::new(|| {
    OomSafe::new(
        r#"
local refused = guard(ARGV[1])
if refused then return refused end
if not unset('multipart') then return {'set'} end
redis.call('HSET', state, 'multipart', ARGV[2], 'fence', ARGV[1])
return {'ok'}
"#,
    )
});

/// ARGV: fence, length. Replies `ok`, `notfound`, `fenced` or `set`.
pub(crate) static SET_LENGTH: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local refused = guard(ARGV[1])
if refused then return refused end
if not unset('length') then return {'set'} end
redis.call('HSET', state, 'length', ARGV[2], 'fence', ARGV[1])
return {'ok'}
"#,
    )
});

/// ARGV: fence, expected parts, expected tail length, tail mode (`keep`, `append`,
/// `replace`), tail bytes, then the new parts' ETags. Replies like [`GET`] with the new state,
/// or `notfound`, `fenced`, `mismatch`, `staging` (the staged bytes are gone). The flagged form is for commits that add parts and
/// empty the tail (a few bytes for up to a part freed); appends stay refused when Redis is full.
///
/// Modes `append-staged` and `replace-staged` take the tail bytes from `KEYS[5]`, where the
/// caller wrote them in slices (ARGV 5 is then their length, checked), and delete it: a large
/// tail never sits whole in one command on the node.
pub(crate) static COMMIT: LazyLock<OomSafe> = LazyLock::new(|| {
    OomSafe::new(
        r#"
local refused = guard(ARGV[1])
if refused then return refused end
if redis.call('LLEN', parts) ~= tonumber(ARGV[2])
   or redis.call('STRLEN', tail) ~= tonumber(ARGV[3]) then
  return {'mismatch'}
end
local mode, bytes = ARGV[4], ARGV[5]
if mode == 'append-staged' or mode == 'replace-staged' then
  -- Gone only if Redis evicted or expired it: not the upload moving on.
  bytes = redis.call('GET', KEYS[5])
  if not bytes or #bytes ~= tonumber(ARGV[5]) then return {'staging'} end
  redis.call('DEL', KEYS[5])
  if mode == 'append-staged' then mode = 'append' else mode = 'replace' end
end
redis.call('HSET', state, 'fence', ARGV[1])
for i = 6, #ARGV do redis.call('RPUSH', parts, ARGV[i]) end
if mode == 'append' then
  if #bytes > 0 then redis.call('APPEND', tail, bytes) end
elseif mode == 'replace' then
  -- An empty string key would still exist; an absent tail is the empty tail.
  if #bytes > 0 then redis.call('SET', tail, bytes) else redis.call('DEL', tail) end
end
return read()
"#,
    )
});

/// The text of the commit of a tail append whose bytes the caller sent as `APPEND tail bytes`
/// just before it, in the same MULTI/EXEC (`RedisState::run_after_append`): the bytes reach
/// Redis's string without passing through Lua, where a 256 KiB argument alone costs Redis
/// about 300 us. ARGV: fence, expected parts, expected tail length before the append, bytes
/// appended. Replies like [`COMMIT`]. A refused commit takes the appended bytes off again
/// before it answers, so the tail is as it was; for that it is flagged to run while Redis is
/// out of memory (the APPEND before it is still refused then), which needs Redis 7. Sent as
/// EVAL, not EVALSHA: a script missing from the cache (a restarted Redis) must not leave the
/// APPEND done and the check undone.
pub(crate) static COMMIT_APPENDED: LazyLock<String> = LazyLock::new(|| {
    format!(
        "#!lua flags=allow-oom\n{PRELUDE}\n{}",
        r#"
local appended = tonumber(ARGV[4])
local function undo(reply)
  local len = redis.call('STRLEN', tail)
  if len <= appended then
    redis.call('DEL', tail)
  else
    redis.call('SET', tail, redis.call('GETRANGE', tail, 0, len - appended - 1), 'KEEPTTL')
  end
  return reply
end
local refused = guard(ARGV[1])
if refused then return undo(refused) end
if redis.call('LLEN', parts) ~= tonumber(ARGV[2])
   or redis.call('STRLEN', tail) ~= tonumber(ARGV[3]) + appended then
  return undo({'mismatch'})
end
if redis.call('HGET', state, 'fence') ~= ARGV[1] then
  redis.call('HSET', state, 'fence', ARGV[1])
end
return read()
"#
    )
});

/// ARGV: fence. Replies `ok`, `notfound` or `fenced`. Runs when Redis is full: it frees the tail.
pub(crate) static FINISH: LazyLock<OomSafe> = LazyLock::new(|| {
    OomSafe::new(
        r#"
local refused = guard(ARGV[1])
if refused then return refused end
redis.call('HSET', state, 'finished', '1', 'fence', ARGV[1])
redis.call('DEL', tail)
return {'ok'}
"#,
    )
});

/// ARGV: fence. Replies `ok`, `notfound` or `fenced`.
pub(crate) static DELETE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local refused = guard(ARGV[1])
if refused then return refused end
redis.call('DEL', state, parts, tail, finals)
return {'ok'}
"#,
    )
});

/// ARGV: fence, expiry in Unix seconds (or "" for none). Replies `ok`, `notfound` or `fenced`.
pub(crate) static SET_EXPIRY: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local refused = guard(ARGV[1])
if refused then return refused end
redis.call('HSET', state, 'expires', ARGV[2], 'fence', ARGV[1])
return {'ok'}
"#,
    )
});
