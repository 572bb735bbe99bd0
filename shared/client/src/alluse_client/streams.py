"""Stream names of the platform, with a deployment's prefix in front of each."""

from dataclasses import dataclass

WS2_EVENTS = "ws2.protocol.events"
WS4_EVENTS = "ws4.market.events"
LIFECYCLE = "alluse.account.lifecycle"
OUTCOMES = "alluse.outcomes"

#: Which inbound stream carries each upstream type.
STREAM_OF: dict[str, str] = {
    "ws2.week.classified": WS2_EVENTS,
    "ws2.protocol.validated": WS2_EVENTS,
    "ws4.trade.filled": WS4_EVENTS,
    "ws4.option.assigned": WS4_EVENTS,
    "ws4.option.expired": WS4_EVENTS,
    "ws4.account.valuation": WS4_EVENTS,
    "ws4.market.quote": WS4_EVENTS,
}


@dataclass(frozen=True)
class Streams:
    """The keys of one deployment. `prefix` is the deployment's ALLUSE_STREAM_PREFIX."""

    prefix: str = ""

    def key(self, name: str) -> str:
        """The key of a logical stream, e.g. `ws4.market.events`."""
        return f"{self.prefix}{name}"

    def lane(self, name: str, lane: str) -> str:
        """A client's own inbound lane of a logical stream: `<prefix>{<prefix><name>}.lane.<L>`.

        The hash tag keeps the lane in its logical stream's Redis Cluster slot.
        """
        return f"{self.prefix}{{{self.key(name)}}}.lane.{lane}"

    def outcomes(self, lane: str) -> str:
        """Where the platform writes one outcome per entry written into lane `lane`."""
        return f"{self.prefix}{OUTCOMES}.{lane}"
