"""A machine client's Redis user and lane (docs/lanes.md), kept with its OAuth client.

`alluse security create-client` registers the client's lane (`<prefix>alluse.lanes`) and gives
it a Redis user `client-<lane>` that may XADD only to its own lane streams and read only its
own outcomes and replies (services/security/redis_acl.py `client_rules`): on the running
Redis (ACL SETUSER over ALLUSE_REDIS_ADMIN_URL, a connection allowed to administer ACLs) and
in the generated ACL file (ALLUSE_REDIS_ACL_FILE), so a restart keeps it. Its password is
random, shown once with the client secret, stored only as a SHA-256 digest. `disable-client`
switches the user off and closes its connections; `enable`, on; `rotate-client-secret` gives
it a new password. The lane stays registered: its name is never a human user's.
"""

import asyncio
import contextlib
import hashlib
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from services.security import redis_acl
from services.security.domain import InvalidRequest
from services.security.settings import SecuritySettings
from shared.contracts.streams import FIXED_LANES, lane_name_ok
from shared.infra.runtime.redisclient import connect


def check_lane(client_id: str) -> None:
    """A client id names its lane: refused before anything is created if it cannot."""
    if not lane_name_ok(client_id) or client_id in FIXED_LANES:
        raise InvalidRequest(
            f"client id '{client_id[:50]}' must be a lane name ([a-z0-9][a-z0-9_-]{{0,62}},"
            f" not {' or '.join(FIXED_LANES)}): it names the client's lane (docs/lanes.md)"
        )


@dataclass
class RedisUsers:
    settings: SecuritySettings

    async def create(self, lane: str) -> dict[str, Any]:
        password = secrets.token_urlsafe(24)
        digest = hashlib.sha256(password.encode()).hexdigest()
        notes = await self._apply(lane, digest, on=True)
        redis = connect(self.settings.redis_url)
        try:
            await redis.sadd(self.settings.streams.lanes, lane)
        finally:
            await redis.aclose()
        return {
            "lane": lane,
            "redis_user": redis_acl.client_user(lane),
            "redis_password": password,
            **notes,
        }

    async def rotate(self, lane: str) -> dict[str, Any]:
        password = secrets.token_urlsafe(24)
        digest = hashlib.sha256(password.encode()).hexdigest()
        notes = await self._apply(lane, digest, on=True, kill=True)
        return {"redis_user": redis_acl.client_user(lane), "redis_password": password, **notes}

    async def switch(self, lane: str, *, on: bool) -> dict[str, Any]:
        line = self._line(lane)
        if line is None and not self.settings.redis_admin_url.get_secret_value():
            return {"redis_user": "unchanged: no ALLUSE_REDIS_ADMIN_URL or ALLUSE_REDIS_ACL_FILE"}
        digest = line.split(" #", 1)[1].split(" ", 1)[0] if line else None
        return await self._apply(lane, digest, on=on, kill=not on)

    def _line(self, lane: str) -> str | None:
        path = self.settings.redis_acl_file
        if not path or not Path(path).exists():
            return None
        prefix = f"user {redis_acl.client_user(lane)} "
        return next((x for x in Path(path).read_text().splitlines() if x.startswith(prefix)), None)

    async def _apply(
        self, lane: str, digest: str | None, *, on: bool, kill: bool = False
    ) -> dict[str, Any]:
        """The user's rules on the running Redis and in the ACL file, where configured."""
        notes: dict[str, Any] = {}
        user, prefix = redis_acl.client_user(lane), self.settings.stream_prefix
        admin_url = self.settings.redis_admin_url.get_secret_value()
        if admin_url:
            admin: Redis = connect(admin_url)
            try:
                rules = ["on" if on else "off"]
                if digest:  # the whole user afresh: no rule of before survives
                    rules = ["reset", *rules, *redis_acl.client_rules(lane, prefix), f"#{digest}"]
                await admin.execute_command("ACL", "SETUSER", user, *rules)  # type: ignore[no-untyped-call]
                if kill:  # its open connections keep their rights: closed now
                    with contextlib.suppress(ResponseError):  # none open
                        await admin.execute_command("CLIENT", "KILL", "USER", user)  # type: ignore[no-untyped-call]
            finally:
                await admin.aclose()
            notes["redis"] = "running server updated"
        else:
            notes["redis"] = "running server not updated: set ALLUSE_REDIS_ADMIN_URL"
        path = self.settings.redis_acl_file
        if path and digest:
            mine = redis_acl.client_line(lane, digest, prefix, on=on)
            await asyncio.to_thread(_keep, Path(path), user, mine)
            notes["acl_file"] = path
        return notes


def _keep(file: Path, user: str, line: str) -> None:
    """The user's line in the ACL file, replacing its earlier one."""
    lines = file.read_text().splitlines() if file.exists() else []
    kept = [x for x in lines if not x.startswith(f"user {user} ")]
    file.write_text("\n".join([*kept, line]) + "\n")
