"""Pooled connections go back to the pool without a reset query (shared/infra/runtime/db.py):
so session state (a session advisory lock, LISTEN, a SET or set_config that outlives its
transaction) may be put only on a connection lent by `db.session()`, which resets it in full,
or on one of its own outside any pool. This keeps every statement that makes such state where
that is known to hold; a new one fails here until it is placed and listed."""

import re
from pathlib import Path

ROOT = Path(__file__).parents[2]
SESSION_STATE = re.compile(
    r"pg_(?:try_)?advisory_lock\("  # a session lock (the _xact_ variants end with the transaction)
    r"|\.add_listener\(|[\"']LISTEN\s"  # a LISTEN
    r"|[\"']SET\s+(?!LOCAL\b)"  # SET without LOCAL (an UPDATE's SET is not a statement's start)
    r"|set_config\([^)]*,\s*false\s*\)",  # set_config for the session
)
# Where session state is put, and why that is safe.
KNOWN = {
    # migrate(): its own connection, closed at the end, never pooled
    "shared/infra/runtime/db.py": 2,
    # the relay's lock holder: its connection comes from db.session()
    "shared/infra/stream/outbox.py": 2,
}


def test_session_state_is_put_only_where_it_is_reset() -> None:
    found: dict[str, int] = {}
    for path in [*(ROOT / "services").rglob("*.py"), *(ROOT / "shared").rglob("*.py")]:
        if n := len(SESSION_STATE.findall(path.read_text())):
            found[str(path.relative_to(ROOT))] = n
    assert found == KNOWN


def test_the_relay_takes_its_lock_holder_through_session() -> None:
    relay = (ROOT / "shared/infra/stream/outbox.py").read_text()
    assert "async with session(self.pool) as lead:" in relay
