"""Writes gathered by shared/infra/runtime/bulk.py's Statements: as one statement, each part a
CTE numbering its parameters after the parts before it; or, apart or cut, one by one in the
order added."""

from typing import Any, cast

from shared.infra.runtime.bulk import Statements
from shared.infra.stream.unit import Sql

LEDGER = [("id", "bigint"), ("memo", "text")]
COUNTS = [("id", "bigint"), ("n", "integer")]


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[str, tuple[Any, ...]]] = []

    async def execute(self, query: str, *args: Any) -> str:
        self.sent.append((query, args))
        return "OK"


def filled(out: Statements) -> None:
    out.insert("ledger", LEDGER, [(1, "a"), (2, "b")])
    out.insert("moves", LEDGER, [])  # nothing: no part
    arrays = out.arrays(COUNTS, [(1, 7)])
    out.add(f"UPDATE counts c SET n = u.n FROM unnest({arrays}) AS u (id, n) WHERE c.id = u.id")


async def test_together_the_parts_are_ctes_of_one_statement_in_order() -> None:
    out, conn = Statements(), Recorder()
    filled(out)
    await out.send(cast(Sql, conn))
    assert conn.sent == [
        (
            "WITH s0 AS (INSERT INTO ledger (id, memo) SELECT * FROM unnest($1::bigint[],"
            " $2::text[])), s1 AS (UPDATE counts c SET n = u.n FROM unnest($3::bigint[],"
            " $4::integer[]) AS u (id, n) WHERE c.id = u.id) SELECT",
            ([1, 2], ["a", "b"], [1], [7]),
        )
    ]
    await out.send(cast(Sql, conn))  # sent once: the builder is empty again
    assert len(conn.sent) == 1


async def test_apart_each_part_is_its_own_statement_in_order() -> None:
    out, conn = Statements(), Recorder()
    out.apart = True
    filled(out)
    out.apart = False
    out.insert("inbox", LEDGER, [(3, "c")])
    out.insert("outbox", LEDGER, [(4, "d")])
    await out.send(cast(Sql, conn))
    assert conn.sent == [
        (
            "INSERT INTO ledger (id, memo) SELECT * FROM unnest($1::bigint[], $2::text[])",
            ([1, 2], ["a", "b"]),
        ),
        (
            "UPDATE counts c SET n = u.n FROM unnest($1::bigint[], $2::integer[]) AS u (id, n)"
            " WHERE c.id = u.id",
            ([1], [7]),
        ),
        (
            "WITH s0 AS (INSERT INTO inbox (id, memo) SELECT * FROM unnest($1::bigint[],"
            " $2::text[])), s1 AS (INSERT INTO outbox (id, memo) SELECT * FROM"
            " unnest($3::bigint[], $4::text[])) SELECT",
            ([3], ["c"], [4], ["d"]),
        ),
    ]


async def test_a_cut_ends_a_statement_and_a_single_part_goes_as_it_is() -> None:
    out, conn = Statements(), Recorder()
    out.insert("ledger", LEDGER, [(1, "a")])
    out.cut()
    out.cut()  # nothing since: no statement
    await out.send(cast(Sql, conn))
    assert conn.sent == [
        (
            "INSERT INTO ledger (id, memo) SELECT * FROM unnest($1::bigint[], $2::text[])",
            ([1], ["a"]),
        )
    ]
