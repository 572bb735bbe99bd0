"""Every stream name, spelled once. A deployment may put a prefix in front of all of them."""

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
CONSUMED = (ACCOUNT_COMMANDS, ACCOUNT_QUERIES, ACCOUNT_EFFECTS, ACCOUNT_EVENTS, WS2_EVENTS,
            WS4_EVENTS, AUDIT)  # fmt: skip


@dataclass(frozen=True)
class Streams:
    """Stream keys with the deployment's prefix applied."""

    prefix: str = ""

    def key(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def dlq(self, name: str) -> str:
        return f"{self.key(name)}{DLQ_SUFFIX}"
