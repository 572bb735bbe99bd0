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
        pipe = self.redis.pipeline(transaction=True)
        pipe.zadd(key, {self.owner: now_ms + self.ttl_ms})
        pipe.zremrangebyscore(key, "-inf", now_ms)
        pipe.zcard(key)
        pipe.pexpire(key, self.ttl_ms * 2)  # bounded: gone when every member is
        return int((await pipe.execute())[2])

    async def leave(self, key: str) -> None:
        await self.redis.zrem(key, self.owner)
