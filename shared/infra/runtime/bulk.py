"""Many rows in one INSERT: each column travels as one array and `unnest` makes the rows.

One statement and one round trip per batch, where `executemany` binds and executes the
statement once per row; the rows land in the order given.

    await insert_rows(conn, "ledger", [("id", "bigint"), ("memo", "text")], rows)

`Statements` gathers several such writes and sends each group of them as ONE statement: each
part a data-modifying CTE of `WITH s0 AS (...), s1 AS (...) SELECT`, one round trip for all.
The parts of a statement all see the database as it was before it (none sees another's rows:
an UPDATE misses a row a sibling inserts, and of two parts that change one row only one takes
effect, silently), while
foreign keys are checked when the whole statement ends. So only writes that read nothing
another writes go together; `cut` (or `apart`) ends a statement, and those after it see its
rows."""

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # a type only: the unit of work sends its writes with these (no cycle)
    from shared.infra.stream.unit import Sql

Columns = Sequence[tuple[str, str]]  # (name, PostgreSQL type): constants of the caller


class Statements:
    """Writes to send, in the order added: together, as one statement, up to each `cut`.
    A part's SQL takes its parameters from `arrays` (or `param`), called just before `add`."""

    def __init__(self) -> None:
        self.apart = False  # while set, each part added is a statement of its own
        self.ready: list[tuple[str, list[Any]]] = []  # statements with their arguments
        self.parts: list[str] = []  # of the statement being built
        self.args: list[Any] = []  # ... and its arguments

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
        self.parts.append(sql)
        if self.apart:
            self.cut()

    def insert(self, table: str, columns: Columns, rows: Sequence[Sequence[Any]]) -> None:
        """The rows into `table`, in the order given; nothing if there are none."""
        if rows:
            names = ", ".join(name for name, _ in columns)
            arrays = self.arrays(columns, rows)
            self.add(f"INSERT INTO {table} ({names}) SELECT * FROM unnest({arrays})")  # noqa: S608

    def cut(self) -> None:
        """The parts added so far are one statement: those added next see what it wrote."""
        if len(self.parts) == 1:
            self.ready.append((self.parts[0], self.args))
        elif self.parts:
            ctes = ", ".join(f"s{i} AS ({sql})" for i, sql in enumerate(self.parts))
            self.ready.append((f"WITH {ctes} SELECT", self.args))
        self.parts, self.args = [], []

    async def send(self, conn: "Sql") -> None:
        """Everything added, then nothing: the builder may be filled again."""
        self.cut()
        ready, self.ready = self.ready, []
        for sql, args in ready:
            await conn.execute(sql, *args)


async def insert_rows(
    conn: "Sql", table: str, columns: Columns, rows: Sequence[Sequence[Any]]
) -> None:
    """`columns`: (name, PostgreSQL type) pairs, constants of the caller; `rows` in that order."""
    out = Statements()
    out.insert(table, columns, rows)
    await out.send(conn)
