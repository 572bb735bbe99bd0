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
# Announce a member for ARGV[2] ms, forget those past, count the rest: one step, by the clock
# of the node that holds the set (on a cluster, the one every replica asks).
_ANNOUNCE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], string.format('%d', now + tonumber(ARGV[2])), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%d', now))
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 2)
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

    async def hold_many(self, keys: list[str], members: str) -> tuple[int, list[bool]]:
        """`live_members(members)` and `hold` of each of `keys`, in one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.eval(_ANNOUNCE, 1, members, self.owner, self.ttl_ms)
        for key in keys:
            pipe.eval(_HOLD, 1, key, self.owner, self.ttl_ms)
        alive, *held = await pipe.execute()
        return int(alive), [bool(h) for h in held]

    async def release(self, key: str) -> None:
        await self.redis.eval(_RELEASE, 1, key, self.owner)

    async def live_members(self, key: str) -> int:
        """Announce this owner on the member set `key` and count the owners alive in it (the
        set expires twice the lease time after its last announcement: bounded)."""
        return int(await self.redis.eval(_ANNOUNCE, 1, key, self.owner, self.ttl_ms))

    async def leave(self, key: str) -> None:
        await self.redis.zrem(key, self.owner)
