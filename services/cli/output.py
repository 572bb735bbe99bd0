"""How the CLI prints: aligned tables for people, JSON for scripts, errors on stderr."""

import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any

# Exit codes that mean something to a script.
OK, REJECTED, UNAVAILABLE, USAGE, TIMEOUT = 0, 1, 3, 2, 4


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
