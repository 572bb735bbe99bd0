"""The ledger: reserved ids, batched rows, broker references claimed once, violations, business time."""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from shared.infra.runtime.bulk import Statements
from shared.infra.stream.unit import Sql


@dataclass(frozen=True, slots=True)
class LedgerRow:
    """One ledger row a command booked, as its handler and its balance_changed event see it."""

    id: int
    type: str
    amount: Decimal  # signed: credits positive, debits negative
    balance_after: Decimal
    description: str
    reference: str | None
    week_type: str | None
    created_at: datetime  # business time


Ref = tuple[str, str, str]  # (producer, kind, reference)
Claims = dict[Ref, tuple[str, str, str]]  # -> (fingerprint, entry source, entry id)
# The claims answering references given as three text arrays ($1 producers, $2 kinds, $3
# references), as one array of records: the producer's own claim, and one from before claims
# were per producer (producer ''), which counts for every producer. Read by `claims_from`.
CLAIMED = (
    "ARRAY(SELECT (w.producer, w.kind, w.ref_id, t.producer = w.producer, t.fingerprint,"
    " t.entry_source, t.entry_id) FROM trade_refs t"
    " JOIN unnest($1::text[], $2::text[], $3::text[]) AS w (producer, kind, ref_id)"
    " ON t.kind = w.kind AND t.ref_id = w.ref_id AND t.producer IN (w.producer, ''))"
)


def claim_args(refs: list[Ref]) -> tuple[list[str], list[str], list[str]]:
    """The parameters of `CLAIMED` for `refs`."""
    return [p for p, _, _ in refs], [k for _, k, _ in refs], [r for _, _, r in refs]


def claims_from(records: list[tuple[Any, ...]]) -> Claims:
    """`CLAIMED`'s records by reference, in whatever order they come: the producer's own claim
    wins over one of no producer."""
    found: Claims = {}
    own: set[Ref] = set()
    for producer, kind, ref_id, mine, fingerprint, source, entry_id in records:
        ref = (producer, kind, ref_id)
        if ref in own:
            continue
        if mine:
            own.add(ref)
        found[ref] = (fingerprint, source, entry_id)
    return found


async def claimed_refs(conn: Sql, *, refs: list[Ref]) -> Claims:
    """The fingerprint each (producer, kind, ref) already applied was applied with, and the
    (source, id) of the entry that claimed it (`CLAIMED`)."""
    return claims_from(await conn.fetchval(f"SELECT {CLAIMED}", *claim_args(refs)))


REF_ROW = [
    ("producer", "text"),
    ("kind", "text"),
    ("ref_id", "text"),
    ("account_id", "uuid"),
    ("fingerprint", "text"),
    ("entry_source", "text"),
    ("entry_id", "text"),
]
VIOLATION_ROW = [
    ("account_id", "uuid"),
    ("trade_ref", "text"),
    ("detail", "text"),
    ("week_type", "text"),
    ("source", "text"),
]


def insert_refs(out: Statements, *, rows: list[tuple[Any, ...]]) -> None:
    """(producer, kind, ref, account, fingerprint, entry source, entry id), each claimed once: no ON CONFLICT, so a reference a
    concurrent transaction applied meanwhile fails the batch, whose entries are then retried
    one by one and find it applied."""
    out.insert("trade_refs", REF_ROW, rows)


def insert_violations(out: Statements, *, rows: list[tuple[Any, ...]]) -> None:
    """(account, trade ref, detail, week type, source); the accounts' counts: accounts.py."""
    out.insert("violations", VIOLATION_ROW, rows)


async def set_effective_time(conn: Sql, *, at: datetime) -> None:
    """Business time of the rows this transaction writes next (see effective_now() in SQL)."""
    await conn.execute("SELECT set_config('alluse.effective_at', $1, true)", at.isoformat())


async def effective_now(conn: Sql) -> datetime:
    value: datetime = await conn.fetchval("SELECT effective_now()")
    return value


async def reserve_ledger_ids(conn: Sql, *, count: int) -> list[int]:
    """Ledger ids for a batch, ascending; unused ones leave harmless gaps."""
    rows = await conn.fetch(
        "SELECT nextval('transactions_id_seq') AS id FROM generate_series(1, $1)", count
    )
    return [int(r["id"]) for r in rows]


LEDGER_ROW = [
    ("id", "bigint"),
    ("account_id", "uuid"),
    ("type", "text"),
    ("amount", "numeric"),
    ("balance_after", "numeric"),
    ("description", "text"),
    ("reference", "text"),
    ("week_type", "text"),
    ("command_id", "text"),
    ("effective_at", "timestamptz"),
]


def insert_ledger(out: Statements, *, rows: list[tuple[Any, ...]]) -> None:
    out.insert("transactions", LEDGER_ROW, rows)
