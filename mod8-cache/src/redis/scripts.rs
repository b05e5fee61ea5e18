//! The Lua scripts the Redis backend runs for tag sets, and how it sends them.
//!
//! Each script touches one key, so it runs on one hash slot of a cluster, and uses only plain
//! commands that Redis 2.6 and later run in scripts.

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
/// on a cluster by its first key, the argument after the script and the key count.
pub(super) fn eval_command() -> fred::types::CustomCommand {
    fred::types::CustomCommand::new_static("EVAL", fred::types::ClusterHash::Offset(2), false)
}
