"""The token buckets and the round-robin order of a batch of queries (shared/infra/stream/limits.py,
shared/infra/stream/replies.py), on a clock the test moves."""

from typing import Any

from shared.infra.stream.limits import Buckets
from shared.infra.stream.replies import namespace_of, round_robin
from shared.infra.trust.auth import Principal


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_admits_its_burst_then_its_rate_and_each_client_has_its_own() -> None:
    clock = Clock()
    b = Buckets(rate=2.0, burst=3, clock=clock)
    assert [b.take("a") for _ in range(3)] == [None, None, None]
    wait = b.take("a")
    assert wait is not None and abs(wait - 0.5) < 1e-9  # one token at 2/s
    assert b.take("b") is None  # another client is not held back
    clock.now = 0.5
    assert b.take("a") is None and b.take("a") is not None


def test_a_costly_request_pays_more_but_is_never_impossible() -> None:
    clock = Clock()
    b = Buckets(rate=1.0, burst=5, clock=clock)
    assert b.take("a", cost=10) is None  # capped at the burst: a full bucket pays for it
    assert b.take("a", cost=10) is not None
    clock.now = 5.0
    assert b.take("a", cost=10) is None


def test_what_a_bucket_holds_is_read_without_taking_it() -> None:
    clock = Clock()
    b = Buckets(rate=2.0, burst=3, clock=clock)
    assert b.left("a") == 3.0
    assert b.take("a", cost=2) is None
    assert b.left("a") == 1.0 and b.left("a") == 1.0
    clock.now = 0.25
    assert b.left("a") == 1.5
    assert Buckets(rate=0, burst=1).left("a") is None


def test_rate_zero_is_no_limit() -> None:
    b = Buckets(rate=0, burst=1)
    assert all(b.take("a") is None for _ in range(1000))


def test_a_batch_is_answered_in_turns_across_clients() -> None:
    def item(sub: str, n: int) -> Any:
        return (f"{sub}-{n}".encode(), {}, None, Principal(sub, "viewer", "j"))

    batch = [item("flood", i) for i in range(5)] + [item("otto", 0), item("vera", 0)]
    order = [entry_id.decode() for entry_id, *_ in round_robin(batch)]
    assert order[:3] == ["flood-0", "otto-0", "vera-0"]
    assert order[3:] == ["flood-1", "flood-2", "flood-3", "flood-4"]


def test_the_namespace_of_a_reply_stream_is_its_clients() -> None:
    assert namespace_of("p.alluse.reply.vera.abc.def") == "p.alluse.reply.vera"
    assert namespace_of("p.alluse.reply.eng%2Ex.1") == "p.alluse.reply.eng%2Ex"
