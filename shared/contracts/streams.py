"""Every stream name, spelled once. A deployment may put a prefix in front of all of them."""

import re
from dataclasses import dataclass

WS2_EVENTS = "ws2.protocol.events"
WS4_EVENTS = "ws4.market.events"
ACCOUNT_COMMANDS = "alluse.account.commands"
ACCOUNT_QUERIES = "alluse.account.queries"
ACCOUNT_LIFECYCLE = "alluse.account.lifecycle"
AUDIT = "alluse.audit"
# The audit chain's head (seq, hash) as the security service publishes it now and then: a
# chain rewritten later no longer matches it.
AUDIT_HEADS = "alluse.audit.heads"
# Internal: the account service's domain events, turned into the lifecycle stream by the
# integration service; and the integration service's trade effects for the account service.
ACCOUNT_EVENTS = "alluse.internal.account.events"
ACCOUNT_EFFECTS = "alluse.internal.account.effects"
REVOCATIONS = "alluse.internal.security.revocations"
DLQ_SUFFIX = ".dlq"
# The streams a service consumes, each with its `<stream>.dlq` for the entries it gave up on.
# The revocation stream's is the security service's: what it refuses there (not its own).
# Lanes (docs/lanes.md): each client writes these streams only through its own lane stream
# `<prefix>{<prefix><stream>}.lane.<L>` (same Redis Cluster slot), fanned in by the services;
# every entry written into lane L gets exactly one outcome on `<prefix>alluse.outcomes.<L>`.
LANED = (ACCOUNT_COMMANDS, ACCOUNT_QUERIES, WS4_EVENTS, WS2_EVENTS)
LANES = "alluse.lanes"  # Redis set of the registered lane names
OUTCOMES = "alluse.outcomes."  # + the lane
REPLY = "alluse.reply."  # + the lane (or a token's escaped subject) + "." + anything
# Always there: the web console's lane (its users' tokens) and the operators' tools' lane.
CONSOLE_LANE, OPERATOR_LANE = "console", "operator"
FIXED_LANES = (CONSOLE_LANE, OPERATOR_LANE)
LANE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")


def lane_name_ok(name: str) -> bool:
    return LANE_NAME.fullmatch(name) is not None


CONSUMED = (
    ACCOUNT_COMMANDS,
    ACCOUNT_QUERIES,
    ACCOUNT_EFFECTS,
    ACCOUNT_EVENTS,
    WS2_EVENTS,
    WS4_EVENTS,
    AUDIT,
    REVOCATIONS,
)


@dataclass(frozen=True)
class Streams:
    """Stream keys with the deployment's prefix applied."""

    prefix: str = ""

    def __post_init__(self) -> None:
        if "{" in self.prefix or "}" in self.prefix:  # it would change what Redis Cluster hashes
            raise ValueError(f"a stream prefix may not hold '{{' or '}}': {self.prefix!r}")

    def key(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def dlq(self, name: str) -> str:
        return f"{self.key(name)}{DLQ_SUFFIX}"

    def beside(self, key: str, suffix: str) -> str:
        """A key of this deployment in the same Redis Cluster slot as the stream `key`:
        `<prefix>{<key>}<suffix>`. A key without a hash tag is hashed whole, so the tag `{<key>}`
        hashes like `key` itself: its public name stays as it is, and the keys a Lua step names
        together with it (its partitions, their leases) live on its node."""
        return f"{self.prefix}{{{key}}}{suffix}"

    def lane(self, name: str, lane: str) -> str:
        """Lane `lane`'s stream of the logical stream `name` (one of LANED)."""
        return self.beside(self.key(name), f".lane.{lane}")

    def outcomes(self, lane: str) -> str:
        return self.key(OUTCOMES + lane)

    def replies(self, lane: str) -> str:
        """The reply namespace of a lane: `replyto` of its queries starts with this."""
        return self.key(f"{REPLY}{lane}.")

    @property
    def lanes(self) -> str:
        return self.key(LANES)


# Who may touch which stream on Redis: one ACL user per service and per kind of client,
# generated into a Redis ACL file (`python -m services.security admin redis-acl`). A reply
# stream is named under its caller's namespace: `<prefix>alluse.reply.<subject>.<id>`.
REPLIES = "alluse.reply.*"


@dataclass(frozen=True)
class Access:
    """What one ACL user may do, by stream name (before the prefix; '*' globs)."""

    consume: tuple[str, ...] = ()  # as a consumer group; entries deleted once applied
    write: tuple[str, ...] = ()  # XADD (and trim what it keeps)
    read: tuple[str, ...] = ()  # XREAD / XRANGE
    follow: tuple[str, ...] = ()  # read in consumer groups of its own, entries untouched
    append: tuple[str, ...] = ()  # XADD and nothing else
    reply: tuple[str, ...] = ()  # answer on callers' reply streams (XADD, EXPIRE)
    drop: tuple[str, ...] = ()  # XDEL single entries (dead letters an operator dropped)
    # Consumed in order per account (docs/architecture.md "Scaling out"): its partitions, leases, members.
    partitioned: tuple[str, ...] = ()
    # Written straight into the partitions of these partitioned streams (another service's,
    # in `write` too): XADD to the partitions and their id sequence (GET, SET), in one Lua step
    # naming them with the public stream; not the leases, not the replica set.
    place: tuple[str, ...] = ()
    # Read-only view of ordered consumption for the runbooks: which replica holds each
    # partition's lease (GET, PTTL) and which replicas are alive (ZRANGE of its members), plus
    # who is connected (CLIENT LIST) and the server's state (INFO). Nothing it may run writes.
    inspect: tuple[str, ...] = ()
    # Lanes (docs/lanes.md). `lanes`: the lanes this user writes (XADD on its lane streams of
    # every LANED stream) and reads the outcomes and replies of. `fan_in`: LANED streams whose
    # lanes this service routes (reads, moves, resets them); `outcomes`: writes every lane's
    # outcome stream; both read the lane registry.
    lanes: tuple[str, ...] = ()
    fan_in: tuple[str, ...] = ()
    outcomes: bool = False
    register: bool = False  # adds and removes lanes in the registry (client administration)
    what: str = ""


# The Redis user of the security administration (ALLUSE_REDIS_ADMIN_URL): it provisions machine
# clients' users and nothing else (services/security/redis_acl.py writes its rules).
ACL_ADMIN = "acladmin"

ACL_USERS = {
    "account": Access(
        consume=(ACCOUNT_COMMANDS, ACCOUNT_QUERIES, ACCOUNT_EFFECTS),
        write=(ACCOUNT_EVENTS, AUDIT),
        read=(REVOCATIONS,),
        reply=(REPLIES,),
        partitioned=(ACCOUNT_COMMANDS, ACCOUNT_EFFECTS),
        fan_in=(ACCOUNT_COMMANDS, ACCOUNT_QUERIES),
        outcomes=True,
        what="the account service",
    ),
    "integration": Access(
        consume=(WS2_EVENTS, WS4_EVENTS, ACCOUNT_EVENTS),
        write=(ACCOUNT_LIFECYCLE, ACCOUNT_EFFECTS, AUDIT),
        read=(REVOCATIONS,),
        place=(ACCOUNT_EFFECTS,),
        fan_in=(WS2_EVENTS, WS4_EVENTS),
        outcomes=True,
        what="the integration service",
    ),
    "security": Access(
        consume=(AUDIT,),
        write=(REVOCATIONS, REVOCATIONS + DLQ_SUFFIX, AUDIT_HEADS, AUDIT),
        read=(REVOCATIONS, AUDIT_HEADS),
        drop=(REVOCATIONS,),
        register=True,
        what="the security service and its administration",
    ),
    # A trading engine is a machine client with a Redis user of its own (`client-<lane>`,
    # `alluse security create-client`; services/security/redis_users.py): no user here writes
    # the shared upstream streams.
    "operator": Access(
        # Its lane for commands and queries; the shared streams only for `alluse dlq redrive`
        # (a re-driven letter is believed by its signature, not by the stream it is on).
        lanes=(OPERATOR_LANE,),
        append=(ACCOUNT_COMMANDS, ACCOUNT_QUERIES),
        read=(ACCOUNT_LIFECYCLE, ACCOUNT_EVENTS, AUDIT_HEADS, f"*{DLQ_SUFFIX}"),
        drop=(f"*{DLQ_SUFFIX}",),
        inspect=(ACCOUNT_COMMANDS, ACCOUNT_EFFECTS),
        what="operators' tools (alluse): commands, queries and their replies in the operators'"
        " lane, re-drives, DLQs, leases",
    ),
    "console": Access(
        lanes=(CONSOLE_LANE,),
        read=(ACCOUNT_LIFECYCLE, REVOCATIONS),
        what="the web console: its users' commands and queries in its lane, the live feed",
    ),
    "lifecycle": Access(follow=(ACCOUNT_LIFECYCLE,), what="consumers of the lifecycle stream"),
}
