"""A Redis ACL file from the stream registry: one user per service and per kind of client.

Each user gets the connection commands it needs and, per group of streams, a selector
`(~key ... +command ...)` that allows exactly that group's commands on exactly those keys, so
a service that consumes a stream cannot also write into it. The default user is disabled.
Passwords come from the environment (ALLUSE_REDIS_PASSWORD_<USER>) and are written only as
SHA-256 digests. Needs Redis 7.2 or later (WAITAOF).
"""

import hashlib
import re
from collections.abc import Mapping

from shared.contracts.streams import (
    ACCOUNT_LIFECYCLE,
    ACL_USERS,
    DLQ_SUFFIX,
    LANED,
    LANES,
    OUTCOMES,
    REPLY,
    Access,
    Streams,
)

# What each kind of access may run; every set is read-side safe on the keys it is given.
COMMANDS = {
    "consume": "xreadgroup xack xdel xclaim xautoclaim xpending xinfo xgroup|create"
    " xgroup|createconsumer xtrim xlen xrange exists eval",  # eval: XACK+XDEL in one step
    "dead": "xadd xtrim xinfo xlen xrange exists",  # the consumer's own <stream>.dlq
    "write": "xadd xtrim xinfo xlen exists",
    "read": "xread xrange xrevrange xlen xinfo exists",
    "follow": "xread xrange xrevrange xlen xinfo exists xreadgroup xack xpending xclaim"
    " xautoclaim xgroup|create xgroup|createconsumer",
    "append": "xadd",
    # del: the oldest of one client's reply streams beyond its cap (ALLUSE_REPLIES_PER_CLIENT)
    "reply": "xadd expire exists del",
    "drop": "xdel del",
    # The Lua steps of ordered consumption name the public stream, its partitions, leases and
    # members; what they run inside is checked again, command by command ("parts", consume).
    # The router waits for new entries on the public stream with a blocking XREAD.
    "ordered": "eval xread",
    # Lanes (docs/lanes.md): a client XADDs to its lane streams only (whatever XADD's
    # arguments, they touch only its lane); reads its outcomes and replies, deletes its replies.
    "lane": "xadd",
    "replies": "del",
    # A service moves each lane's entries into the logical stream (a Lua step naming the lane
    # and the target), resets a lane left exhausted, and writes every lane's outcomes.
    "fanin": "eval xread",  # the Lua step and the wait name lanes and the target together
    "route": "xrange xdel xlen del exists",
    "target": "xadd",
    "outcomes": "xadd xtrim xinfo xlen exists",
    "registry": "smembers",
    "register": "sadd srem smembers",
    "parts": "xadd xdel xrange xlen exists get set pexpire del zadd zrem zremrangebyscore zcard",
    "inspect": "get pttl zrange zcard exists type",
}
# A Redis Cluster client also reads the slot map and the command table (keys of each command).
CLIENT = (
    "ping hello select client|setname client|getname echo multi exec discard cluster|slots command"
)
# Services also check the server (readiness, AOF durability) and confirm fsyncs.
SERVICE = "info config|get time waitaof"
SERVICES = ("account", "integration", "security")
# Who inspects (Access.inspect) may also list the connections and read the server's state:
# both read-only, and what the runbooks need to tell which replica or client is where.
INSPECT = "client|list info"


def password_variable(user: str) -> str:
    return f"ALLUSE_REDIS_PASSWORD_{user.upper()}"


def _glob(prefix: str, name: str) -> str:
    """The key pattern for `name` under the prefix; the prefix matches only itself."""
    return re.sub(r"([*?\[\]\\])", r"\\\1", prefix) + name


def _partitioned(names: tuple[str, ...], prefix: str, *suffixes: str) -> tuple[str, ...]:
    """Patterns of the keys of ordered consumption (Streams.beside), the prefix escaped."""
    s = Streams(_glob(prefix, ""))
    return tuple(s.beside(s.key(n), suffix) for n in names for suffix in suffixes)


def _selectors(access: Access, prefix: str) -> list[str]:
    ordered = _partitioned(access.partitioned, prefix, ".p*", ".lease.*")
    ordered_lanes = _partitioned(
        tuple(n for n in access.fan_in if n in access.partitioned), prefix, ".lane.*"
    )
    unordered = tuple(n for n in access.fan_in if n not in access.partitioned)
    members = _partitioned(access.partitioned, prefix, ".members")
    inspected = _partitioned(access.inspect, prefix, ".lease.*", ".members")
    groups = {
        "consume": access.consume,
        "dead": tuple(s + DLQ_SUFFIX for s in access.consume),
        "write": access.write,
        # A lane's outcomes and replies with what else it reads: one XREAD waits on both
        # (a selector must allow every key a command names).
        "read": access.read
        + tuple(OUTCOMES + lane for lane in access.lanes)
        + tuple(f"{REPLY}{lane}.*" for lane in access.lanes),
        "follow": access.follow,
        "append": access.append,
        "reply": access.reply,
        "drop": access.drop,
        "ordered": tuple(_glob(prefix, n) for n in access.partitioned)
        + ordered
        + members
        + ordered_lanes,
        "parts": ordered + members,
        "inspect": inspected,
        "lane": _partitioned(LANED, prefix, *(f".lane.{lane}" for lane in access.lanes)),
        "replies": tuple(_glob(prefix, f"{REPLY}{lane}.*") for lane in access.lanes),
        "fanin": _partitioned(unordered, prefix, ".lane.*")
        + tuple(_glob(prefix, n) for n in unordered),
        "route": _partitioned(access.fan_in, prefix, ".lane.*"),
        "target": tuple(_glob(prefix, n) for n in unordered),
        "outcomes": (_glob(prefix, OUTCOMES + "*"),) if access.outcomes else (),
        "registry": (_glob(prefix, LANES),) if access.fan_in and not access.register else (),
        "register": (_glob(prefix, LANES),) if access.register else (),
    }
    out = []
    for kind, names in groups.items():
        if names:
            # these patterns carry the (escaped) prefix already
            escaped = kind not in (
                "consume",
                "dead",
                "write",
                "read",
                "follow",
                "append",
                "reply",
                "drop",
            )
            keys = " ".join(f"~{n if escaped else _glob(prefix, n)}" for n in names)
            commands = " ".join(f"+{c}" for c in COMMANDS[kind].split())
            out.append(f"({keys} {commands})")
    return out


def user_line(user: str, access: Access, password: str, prefix: str) -> str:
    digest = hashlib.sha256(password.encode()).hexdigest()
    root = (
        CLIENT
        + (f" {SERVICE}" if user in SERVICES else "")
        + (f" {INSPECT}" if access.inspect else "")
    )
    rules = ["on", f"#{digest}", "resetkeys", "resetchannels", "-@all"]
    rules += [f"+{c}" for c in root.split()] + _selectors(access, prefix)
    return f"user {user} " + " ".join(rules)


def client_user(lane: str) -> str:
    """The Redis user of a machine client, named by its lane (its client id)."""
    return f"client-{lane}"


def client_rules(lane: str, prefix: str) -> list[str]:
    """What a machine client's Redis user may do: its own lane, and read the public feed (an
    applied command's events, by the ids its outcome names)."""
    rules = ["resetkeys", "resetchannels", "-@all", *(f"+{c}" for c in CLIENT.split())]
    return rules + _selectors(Access(lanes=(lane,), read=(ACCOUNT_LIFECYCLE,)), prefix)


def client_line(lane: str, digest: str, prefix: str, *, on: bool = True) -> str:
    """The ACL file line of a client's user; `digest`: SHA-256 hex of its password."""
    rules = ["on" if on else "off", f"#{digest}", *client_rules(lane, prefix)]
    return f"user {client_user(lane)} " + " ".join(rules)


def client_lines(text: str) -> list[str]:
    """The client users' lines of an ACL file (kept when the file is regenerated)."""
    return [line for line in text.splitlines() if line.startswith("user client-")]


def acl_file(passwords: Mapping[str, str], prefix: str = "", clients: list[str] = []) -> str:  # noqa: B006
    """The ACL file's text; raises KeyError naming the first user without a password.
    `clients`: the machine clients' user lines, as `alluse security create-client` wrote them."""
    # Redis ACL files have no comments: what each user is for is in the stream registry.
    lines = ["user default off resetkeys resetchannels -@all"]
    for user, access in ACL_USERS.items():
        password = passwords.get(password_variable(user), "")
        if len(password) < 16:
            raise KeyError(password_variable(user))
        lines.append(user_line(user, access, password, prefix))
    return "\n".join([*lines, *clients]) + "\n"
