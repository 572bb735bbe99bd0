"""An entry's `data` within its limits (depth, string length): decode() skips walking it only
where its text alone proves it within them, and refuses exactly what the walk refuses."""

import json
from typing import Any

import pytest

from shared.contracts.envelope import EnvelopeError, Limits, decode, new_event

LIMITS = Limits(json_depth=3, string_length=40)


def _entry(data: dict[str, Any]) -> dict[bytes, bytes]:
    fields = new_event("alluse.account.deposit", "cli", data, event_id="cmd-1")
    return {k.encode(): v.encode() for k, v in fields.items()}


@pytest.mark.parametrize(
    "data",
    [
        {"a": {"b": {"c": 1}}},  # three levels: the limit
        {"a": [[1]], "b": {"c": [2]}},  # brackets enough to need the walk, none too deep
        {"a": "{[{[" * 10},  # brackets in a string count for the shortcut, not for the depth
        {"a": "x" * 40},  # a string of the limit's length
        {"a": "é✓😀" * 13},  # more bytes than characters: characters count
        {"a": [], "b": {}, "c": "[]"},
    ],
)
def test_data_within_the_limits_is_read(data: dict[str, Any]) -> None:
    assert decode(_entry(data), LIMITS).data == data


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ({"a": {"b": {"c": {}}}}, "nested deeper than 3 levels"),
        ({"a": [[[1]]]}, "nested deeper than 3 levels"),
        ({"a": "x" * 41}, "longer than 40 characters"),
        ({"x" * 41: 1}, "longer than 40 characters"),  # keys too
        ({"a": ["x" * 41]}, "longer than 40 characters"),
    ],
)
def test_data_beyond_the_limits_is_refused(data: dict[str, Any], reason: str) -> None:
    with pytest.raises(EnvelopeError, match=reason):
        decode(_entry(data), LIMITS)


def test_an_escaped_string_counts_as_decoded() -> None:
    entry = _entry({})
    entry[b"data"] = b'{"a": "' + b"\\u00e9" * 40 + b'"}'  # 246 characters, 40 once decoded
    assert decode(entry, LIMITS).data == {"a": "\u00e9" * 40}
    entry[b"data"] = b'{"a": "' + b"\\u00e9" * 41 + b'"}'
    with pytest.raises(EnvelopeError, match="longer than 40 characters"):
        decode(entry, LIMITS)


def test_the_default_limits_hold_for_a_large_entry() -> None:
    deep: Any = 1
    for _ in range(33):
        deep = [deep]
    with pytest.raises(EnvelopeError, match="nested deeper than 32 levels"):
        decode(_entry({"a": deep}))
    with pytest.raises(EnvelopeError, match="longer than 65536 characters"):
        decode(_entry({"a": "x" * 65_537}))
    ok = {"a": "x" * 65_536, "b": json.loads("[" * 31 + "]" * 31)}
    assert decode(_entry(ok)).data == ok


def test_each_entry_has_its_own_proof_of_its_writer() -> None:
    one, two = decode(_entry({"a": 1})), decode(_entry({"a": 1}))
    assert (one.key, one.actor, one.scope) == (("", "cli", "cmd-1"), None, None)
    one.verified_as("user-1")
    one.scoped_to("scope")
    assert (one.key, one.actor, one.scope) == (("client:user-1", "cli", "cmd-1"), "user-1", "scope")
    assert (two.key, two.actor, two.scope) == (("", "cli", "cmd-1"), None, None)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ({"a": "x" * 41, "b": [[[[1]]]]}, "nested deeper"),
        ({"a": [[[[1]]]], "b": "x" * 41}, "longer than"),
        ({"a": [[[[1]]], "x" * 41]}, "longer than"),
        ({"a": ["x" * 41, [[[1]]]]}, "nested deeper"),
    ],
)
def test_of_two_faults_the_one_met_first_from_the_end_is_named(
    data: dict[str, Any], reason: str
) -> None:
    """The reason a dead letter gives stays what it was: the walk goes from each object's and
    array's last item."""
    with pytest.raises(EnvelopeError, match=reason):
        decode(_entry(data), LIMITS)
