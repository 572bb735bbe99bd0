"""Many rows in one INSERT: each column travels as one array and `unnest` makes the rows.

One statement and one round trip per batch, where `executemany` binds and executes the
statement once per row; the rows land in the order given.

    await insert_rows(conn, "ledger", [("id", "bigint"), ("memo", "text")], rows)
"""

from collections.abc import Sequence
from typing import Any

from shared.infra.stream.unit import Sql


async def insert_rows(
    conn: Sql, table: str, columns: Sequence[tuple[str, str]], rows: Sequence[Sequence[Any]]
) -> None:
    """`columns`: (name, PostgreSQL type) pairs, constants of the caller; `rows` in that order."""
    if not rows:
        return
    names = ", ".join(name for name, _ in columns)
    arrays = ", ".join(f"${i}::{kind}[]" for i, (_, kind) in enumerate(columns, 1))
    await conn.execute(
        f"INSERT INTO {table} ({names}) SELECT * FROM unnest({arrays})",  # noqa: S608
        *(list(column) for column in zip(*rows, strict=True)),
    )
