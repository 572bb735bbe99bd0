"""Many rows in one INSERT: each column travels as one array and `unnest` makes the rows.

One statement and one round trip per batch, where `executemany` binds and executes the
statement once per row; the rows land in the order given.

    await insert_rows(conn, "ledger", [("id", "bigint"), ("memo", "text")], rows)

`Statements` gathers several such writes and sends them either one by one, in the order added,
or as ONE statement: each a data-modifying CTE of `WITH s0 AS (...), s1 AS (...) SELECT`, one
round trip for all. Sent as one, every part sees the database as it was before the statement
(none sees another's rows: an UPDATE misses a row a sibling inserts, and one row changed by two
parts is an error), while foreign keys are checked when the whole statement ends. Only writes
that read nothing another one writes may go as one; the caller decides."""

from collections.abc import Sequence
from typing import Any

from shared.infra.stream.unit import Sql

Columns = Sequence[tuple[str, str]]  # (name, PostgreSQL type): constants of the caller


class Statements:
    """Writes to send: `as_one` in one statement, else each on its own in the order added.
    A part's SQL takes its parameters from `arrays` (or `param`), called just before `add`."""

    def __init__(self, *, as_one: bool) -> None:
        self.as_one = as_one
        self.ready: list[tuple[str, list[Any]]] = []  # statements with their arguments
        self.parts: list[str] = []  # of the one statement
        self.args: list[Any] = []  # of the statement being built

    def param(self, value: Any, kind: str) -> str:
        self.args.append(value)
        return f"${len(self.args)}::{kind}"

    def arrays(self, columns: Columns, rows: Sequence[Sequence[Any]]) -> str:
        """The rows' columns as array parameters, for `unnest(...)`."""
        values = zip(*rows, strict=True)
        return ", ".join(
            self.param(list(column), f"{kind}[]")
            for (_, kind), column in zip(columns, values, strict=True)
        )

    def add(self, sql: str) -> None:
        if self.as_one:
            self.parts.append(sql)
        else:
            self.ready.append((sql, self.args))
            self.args = []

    def insert(self, table: str, columns: Columns, rows: Sequence[Sequence[Any]]) -> None:
        """The rows into `table`, in the order given; nothing if there are none."""
        if rows:
            names = ", ".join(name for name, _ in columns)
            arrays = self.arrays(columns, rows)
            self.add(f"INSERT INTO {table} ({names}) SELECT * FROM unnest({arrays})")  # noqa: S608

    async def send(self, conn: Sql) -> None:
        """Everything added, then nothing: the builder may be filled again."""
        if len(self.parts) == 1:
            self.ready.append((self.parts[0], self.args))
        elif self.parts:
            ctes = ", ".join(f"s{i} AS ({sql})" for i, sql in enumerate(self.parts))
            self.ready.append((f"WITH {ctes} SELECT", self.args))
        ready, self.ready, self.parts, self.args = self.ready, [], [], []
        for sql, args in ready:
            await conn.execute(sql, *args)


async def insert_rows(
    conn: Sql, table: str, columns: Columns, rows: Sequence[Sequence[Any]]
) -> None:
    """`columns`: (name, PostgreSQL type) pairs, constants of the caller; `rows` in that order."""
    out = Statements(as_one=False)
    out.insert(table, columns, rows)
    await out.send(conn)
