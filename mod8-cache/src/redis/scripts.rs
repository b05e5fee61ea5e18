//! The Lua scripts the Redis backend runs for tag sets and counters, and how it sends them.
//!
//! Each script touches one key, or a counter and its idempotency markers, which share the
//! counter's hash tag: so it runs on one hash slot of a cluster. Only plain commands that
//! Redis 2.6 and later run in scripts.

/// Adds a member to a tag set and sets the set's lifetime, atomically: the set lives as long
/// as its longest-lived member, and for ever once any member has no TTL (a tag set that
/// expired with a short-lived member would let invalidation miss the persistent ones).
/// Separate SADD / PERSIST / PEXPIRE commands could not tell a set made persistent for such a
/// member from one that has no expiry yet. One key, so one hash slot on a cluster; plain
/// commands that Redis 2.6 and later run in scripts.
///
/// KEYS[1] the tag set; ARGV[1] the member; ARGV[2] its TTL in milliseconds, 0 for none.
pub(super) const TAG_ADD_SCRIPT: &str = r"
local existed = redis.call('EXISTS', KEYS[1])
redis.call('SADD', KEYS[1], ARGV[1])
local ttl = tonumber(ARGV[2])
if ttl == 0 then
  redis.call('PERSIST', KEYS[1])
elseif existed == 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
else
  local current = redis.call('PTTL', KEYS[1])
  if current >= 0 and current < ttl then
    redis.call('PEXPIRE', KEYS[1], ttl)
  end
end
return 1
";

/// Takes a tag set's members and deletes the set in one step, so a member added meanwhile
/// lands in a new set instead of being deleted unseen with the old one (SMEMBERS then UNLINK
/// lost those, leaving their entries reachable by no tag). One key, so one hash slot.
///
/// KEYS[1] the tag set; returns its members.
pub(super) const TAG_TAKE_SCRIPT: &str = r"
local members = redis.call('SMEMBERS', KEYS[1])
redis.call('UNLINK', KEYS[1])
return members
";

/// `EVAL` as a custom command (fred's Lua interface is not available on pipelines), routed
/// on a cluster to the slot of `key`, its first key. The slot is given outright: fred honours
/// only a fixed slot on a custom command and otherwise hashes its first argument, the script
/// body, which sent every script to one node to be redirected (MOVED) from there.
pub(super) fn eval_command(key: &str) -> fred::types::CustomCommand {
    fred::types::CustomCommand::new_static(
        "EVAL",
        fred::types::ClusterHash::Custom(fred::util::redis_keyslot(key.as_bytes())),
        false,
    )
}

/// Adds deltas to the fields of a counter hash, all or nothing, once per idempotency id.
///
/// The increments are HINCRBY, so Redis itself checks each sum against the 64-bit range
/// (Lua numbers are doubles and could not); a field that would overflow undoes the fields
/// already changed (back to their previous value, or removed if they were new) and the script
/// returns `{-1, field, error}`. Values are returned as strings read back with HGET, exact
/// beyond 2^53. With an idempotency marker, a marker that exists means "already applied":
/// nothing changes and `{0, values...}` comes back; otherwise the marker is set (with its
/// window) after the increments, in the same atomic step. Both keys share the counter's hash
/// tag, so they are in one slot on a cluster.
///
/// With ARGV[3] = 1 (existing only), a counter that does not exist is left alone (no
/// counter, no marker) and `{2, 0...}` comes back, checked before the marker.
///
/// KEYS[1] the counter hash, KEYS[2] (optional) the marker; ARGV[1] the counter's TTL in
/// milliseconds (0: leave as is), ARGV[2] the marker's window in milliseconds, ARGV[3] 1 for
/// existing only (else 0), ARGV[4..] field, delta pairs. Returns `{1, values...}` when
/// applied.
pub(super) const COUNTER_INCREMENT_SCRIPT: &str = r"
local counter, marker = KEYS[1], KEYS[2]
local n = (#ARGV - 3) / 2
local function values(status)
  local out = {status}
  for i = 1, n do
    out[i + 1] = redis.call('HGET', counter, ARGV[2 + 2 * i]) or '0'
  end
  return out
end
if ARGV[3] == '1' and redis.call('EXISTS', counter) == 0 then
  return values(2)
end
if marker and redis.call('EXISTS', marker) == 1 then
  return values(0)
end
local done = {}
for i = 1, n do
  local field, delta = ARGV[2 + 2 * i], ARGV[3 + 2 * i]
  local before = redis.call('HGET', counter, field)
  local result = redis.pcall('HINCRBY', counter, field, delta)
  if type(result) == 'table' and result.err then
    for j = #done, 1, -1 do
      local f, old = done[j][1], done[j][2]
      if old then
        redis.call('HSET', counter, f, old)
      else
        redis.call('HDEL', counter, f)
      end
    end
    return {-1, field, result.err}
  end
  done[#done + 1] = {field, before}
end
local ttl = tonumber(ARGV[1])
if ttl > 0 then
  redis.call('PEXPIRE', counter, ttl)
end
if marker then
  redis.call('SET', marker, '1', 'PX', ARGV[2])
end
return values(1)
";

/// Creates a counter hash with the given field values unless it exists, and sets the markers
/// of the ids its values already include, in one atomic step (`CacheStore::init_counter`):
/// an existing counter is left as it is and no marker is set. Every key shares the counter's
/// hash tag, so one cluster slot. Values are passed as decimal text and stored as such (what
/// HINCRBY reads).
///
/// KEYS[1] the counter hash, KEYS[2..] the markers; ARGV[1] the counter's TTL in milliseconds
/// (0: none), ARGV[2] the markers' window in milliseconds, ARGV[3..] field, value pairs.
/// Returns `{1, values...}` when created, `{0, values...}` (the existing ones) otherwise.
pub(super) const COUNTER_INIT_SCRIPT: &str = r"
local counter = KEYS[1]
local n = (#ARGV - 2) / 2
local function values(status)
  local out = {status}
  for i = 1, n do
    out[i + 1] = redis.call('HGET', counter, ARGV[1 + 2 * i]) or '0'
  end
  return out
end
if redis.call('EXISTS', counter) == 1 then
  return values(0)
end
for i = 1, n do
  redis.call('HSET', counter, ARGV[1 + 2 * i], ARGV[2 + 2 * i])
end
local ttl = tonumber(ARGV[1])
if ttl > 0 then
  redis.call('PEXPIRE', counter, ttl)
end
for k = 2, #KEYS do
  redis.call('SET', KEYS[k], '1', 'PX', ARGV[2])
end
return values(1)
";
