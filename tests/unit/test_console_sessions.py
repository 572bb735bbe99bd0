"""Console sessions end when idle, when too old, and make room when the store is full."""

from services.console.sessions import Sessions


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def new(store: Sessions, name: str = "ada") -> str:
    session = store.create(
        name=name,
        subject=f"id-{name}",
        role="viewer",
        access_token="a.b.c",
        refresh_token="r",
        expires_in=900,
    )
    return session.id


def test_a_session_ends_after_its_idle_time_and_use_keeps_it_alive() -> None:
    clock = Clock()
    store = Sessions(idle=60, max_age=3600, capacity=10, clock=clock)
    sid = new(store)
    clock.now += 59
    assert store.get(sid) is not None
    clock.now += 59
    assert store.get(sid) is not None
    clock.now += 61
    assert store.get(sid) is None
    assert store.get(sid) is None and len(store) == 0


def test_a_session_ends_at_its_maximum_age_however_busy() -> None:
    clock = Clock()
    store = Sessions(idle=60, max_age=100, capacity=10, clock=clock)
    sid = new(store)
    for _ in range(3):
        clock.now += 30
        assert store.get(sid) is not None
    clock.now += 30
    assert store.get(sid) is None


def test_a_full_store_drops_the_least_recently_used_session() -> None:
    clock = Clock()
    store = Sessions(idle=600, max_age=3600, capacity=2, clock=clock)
    first, second = new(store, "a"), new(store, "b")
    clock.now += 1
    store.get(first)
    third = new(store, "c")
    assert len(store) == 2
    assert store.get(second) is None
    assert store.get(first) is not None and store.get(third) is not None


def test_ids_and_csrf_tokens_are_unguessable_and_tokens_never_in_repr() -> None:
    store = Sessions(idle=60, max_age=60, capacity=10)
    a, b = store.get(new(store)), store.get(new(store))
    assert a is not None and b is not None
    assert a.id != b.id and a.csrf != b.csrf and len(a.id) >= 40 and len(a.csrf) >= 40
    assert "a.b.c" not in repr(a) and a.csrf not in repr(a)
    a.flash = {"kind": "done"}
    assert a.pop_flash() == {"kind": "done"} and a.pop_flash() is None


def test_one_user_signing_in_a_thousand_times_never_evicts_another_users_session() -> None:
    """Finding 6: one viewer signing in 1,000 times evicted the operator's console session."""
    clock = Clock()
    store = Sessions(idle=600, max_age=3600, capacity=50, per_user=5, clock=clock)
    operator = new(store, "otto")
    viewer = []
    for _ in range(1000):
        clock.now += 0.01
        viewer.append(new(store, "vera"))
    assert store.get(operator) is not None
    assert store.of("id-vera") == 5 and len(store) == 6
    assert [store.get(s) is not None for s in viewer[-6:]] == [False] + [True] * 5


def test_a_full_store_makes_room_at_the_expense_of_the_user_holding_the_most() -> None:
    clock = Clock()
    store = Sessions(idle=600, max_age=3600, capacity=4, per_user=3, clock=clock)
    otto = new(store, "otto")  # the least recently used of all, but alone
    clock.now += 1
    vera = [new(store, "vera") for _ in range(3)]
    clock.now += 1
    ada = new(store, "ada")  # the store is full: vera, holding the most, gives one up
    assert store.get(otto) is not None and store.get(ada) is not None
    assert store.of("id-vera") == 2 and store.get(vera[0]) is None
