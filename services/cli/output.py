"""How the CLI prints: aligned tables for people, JSON for scripts, errors on stderr."""

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

# Exit codes that mean something to a script.
OK, REJECTED, UNAVAILABLE, USAGE, TIMEOUT = 0, 1, 3, 2, 4


class CliError(Exception):
    """Something the operator must fix or know about, with the exit code that says which."""

    def __init__(self, message: str, code: int, data: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message, self.code, self.data = message, code, dict(data or {})


def rejected(data: Mapping[str, Any]) -> CliError:
    return CliError(f"rejected: {data.get('code')}: {data.get('reason')}", REJECTED, data)


def emit(
    args: Any, rows: Sequence[Mapping[str, Any]] | Mapping[str, Any], columns: Sequence[str] = ()
) -> None:
    if getattr(args, "json", False):
        print(json.dumps(rows, indent=2, default=str))
        return
    if isinstance(rows, Mapping):
        width = max((len(k) for k in rows), default=0)
        for key, value in rows.items():
            print(
                f"{key:<{width}}  {value if not isinstance(value, dict | list) else json.dumps(value, default=str)}"
            )
        return
    table(rows, columns or (list(rows[0]) if rows else []))


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> None:
    cells = [[str(r.get(c, "")) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for row in cells:
        print(
            "  ".join(
                v.rjust(w) if _numeric(v) else v.ljust(w) for v, w in zip(row, widths, strict=True)
            )
        )
    print(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")


def _numeric(value: str) -> bool:
    return value.replace(",", "").replace(".", "", 1).replace("-", "", 1).isdigit()


def fail(message: str, code: int = REJECTED) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


# How account results look to a person: money with separators, the usual fields first.

MONEY = {
    "amount",
    "balance",
    "balance_after",
    "cash_buffer",
    "available",
    "contributed_capital",
    "baseline",
    "total_balance",
    "active_balance",
    "total_capital",
    "cash_buffer_total",
    "available_total",
    "ledger",
}
ACCOUNT_COLUMNS = ("type", "id", "name", "status", "balance", "cash_buffer", "available")
FIRST = ("id", "name", "type", "status", "portfolio_id", "balance", "cash_buffer", "available")


def human(values: Mapping[str, Any]) -> dict[str, Any]:
    """Money with thousands separators, the usual fields first, config one setting a line."""
    ordered = {k: values[k] for k in FIRST if k in values} | dict(values)
    out = {k: money(v) if k in MONEY and v is not None else v for k, v in ordered.items()}
    config = out.pop("config", None)
    if isinstance(config, dict):
        out |= {f"config.{k}": ",".join(v) if isinstance(v, list) else v for k, v in config.items()}
    elif config is not None:
        out["config"] = config
    return out


def money(value: Any) -> str:
    try:
        return f"{Decimal(str(value)):,.2f}"
    except ArithmeticError:  # not ours to fix: show what the service sent
        return str(value)


def rows_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> None:
    cells = [
        {c: "" if r.get(c) is None else str(r.get(c)) for c in columns} for r in map(human, rows)
    ]
    for c in set(columns) & MONEY:  # right-align money, which the table sees as text
        width = max([len(c)] + [len(r[c]) for r in cells])
        for r in cells:
            r[c] = r[c].rjust(width)
    table(cells, columns)


def show(
    args: argparse.Namespace, raw: Mapping[str, Any], view: Mapping[str, Any] | None = None
) -> int:
    emit(args, raw if args.json else human(view if view is not None else raw))
    return OK


POSITION_COLUMNS = (
    "contract",
    "kind",
    "quantity",
    "strike",
    "expiration",
    "cost",
    "mark",
    "market_value",
)
VALUE = ("cash", "positions", "positions_value", "value")


def value_lines(data: Mapping[str, Any]) -> None:
    """An account's positions as a table, then cash + positions = value (docs/rules.md section
    11)."""
    if data.get("positions"):
        rows_table(data["positions"], POSITION_COLUMNS)
    else:
        print("no open positions")
    print(
        f"cash {money(data['cash'])}  +  positions {money(data['positions_value'])}"
        f"  =  value {money(data['value'])}"
    )
