"""Leases in Redis: a key per leased thing, held by one owner, renewed, taken over once expired.

A replica that dies stops renewing; its leases expire after `ttl_ms` and another takes them.
"""

from dataclasses import dataclass

from redis.asyncio import Redis

# Renew when mine, take when free: one round trip, never steals a lease another holds.
_HOLD = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if holder then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
# Announce a member until ARGV[2], forget those past ARGV[3], count the rest: one step.
_ANNOUNCE = """
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return redis.call('ZCARD', KEYS[1])
"""


@dataclass
class Leases:
    redis: Redis
    owner: str
    ttl_ms: int

    async def hold(self, key: str) -> bool:
        """Take `key` if free, renew it if ours; False when another owner holds it."""
        return bool(await self.redis.eval(_HOLD, 1, key, self.owner, self.ttl_ms))

    async def release(self, key: str) -> None:
        await self.redis.eval(_RELEASE, 1, key, self.owner)

    async def live_members(self, key: str, now_ms: int) -> int:
        """Announce this owner on the member set `key` and count the owners alive in it."""
        until, expiry = now_ms + self.ttl_ms, self.ttl_ms * 2  # bounded: gone when all are
        return int(await self.redis.eval(_ANNOUNCE, 1, key, self.owner, until, now_ms, expiry))

    async def leave(self, key: str) -> None:
        await self.redis.zrem(key, self.owner)
