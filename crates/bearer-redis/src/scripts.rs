//! The Lua scripts that make check-and-write steps atomic on the server.

use std::sync::LazyLock;

use redis::Script;

/// Writes a token, fenced if a fence is given: only while the lease still
/// holds that fence, and then the lease is dropped in the same step, so a
/// waiter that sees no lease knows the value is final. Publishes the key id.
///
/// KEYS: value, lease. ARGV: value, ttl ms, fence (`""` = unfenced), channel, id.
/// Returns 1 if written, 0 if the fence no longer held.
pub(crate) static SAVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if ARGV[3] ~= '' then
  if redis.call('GET', KEYS[2]) ~= ARGV[3] then return 0 end
  redis.call('DEL', KEYS[2])
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('PUBLISH', ARGV[4], ARGV[5])
return 1
",
    )
});

/// Drops a lease if it still holds our fence, and wakes the waiters so they
/// need not sit out their timeout after a failed fetch.
///
/// KEYS: lease. ARGV: fence, channel, id. Returns 1 if released.
pub(crate) static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', ARGV[2], ARGV[3])
  return 1
end
return 0
",
    )
});

/// Extends a lease if it still holds our fence: a live holder keeps it
/// however long its fetch takes; one that stopped renewing loses it.
///
/// KEYS: lease. ARGV: fence, ttl ms. Returns 1 if extended, 0 if lost.
pub(crate) static RENEW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
",
    )
});

/// Reads the value and the lease's remaining time in one step.
///
/// KEYS: value, lease. Returns `[value or nil, lease PTTL]` (PTTL < 0: no lease).
pub(crate) static PEEK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
return {redis.call('GET', KEYS[1]), redis.call('PTTL', KEYS[2])}
",
    )
});
