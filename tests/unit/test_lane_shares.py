"""A fair lane router's round: the room in its target shared in turns across the lanes."""

from shared.infra.stream.lanes import shares


def test_every_lanes_first_entry_before_any_lanes_second() -> None:
    assert shares([5000, 1], 8) == [7, 1]
    assert shares([3, 3, 3], 4) == [2, 1, 1]
    assert shares([1, 0, 2], 8) == [1, 0, 2]
    assert shares([4, 4], 0) == [0, 0]
    assert shares([], 8) == []
