"""The operations page: each service's own /readyz and /metrics, as an on-call person reads them."""

import asyncio
import json
import urllib.request
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from services.console import web
from shared.contracts.permissions import Permission

LABELS = {  # what each per-stream series is called on the page
    "alluse_stream_lag": "lag",
    "alluse_stream_pending": "pending",
    "alluse_messages_dead_lettered_total": "dead-lettered",
    "alluse_messages_consumed_total": "consumed",
    "alluse_messages_rejected_total": "rejected",
    "alluse_dlq_entries": "in DLQ",
}


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=3) as r:  # noqa: S310 - the operator's own URLs
            return r.status, r.read(1_000_000).decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(100_000).decode(errors="replace")
    except OSError as exc:
        return 0, f"unreachable: {type(exc).__name__}"


def per_stream(
    metrics_text: str, prefix: str = ""
) -> tuple[list[str], dict[str, dict[str, float]]]:
    """Every alluse_* sample with a `stream` label, as columns and a row per stream."""
    rows: dict[str, dict[str, float]] = {}
    columns: list[str] = []
    try:
        families = list(text_string_to_metric_families(metrics_text))
    except ValueError:
        return [], {}
    for family in families:
        for sample in family.samples:
            stream = sample.labels.get("stream", "").removeprefix(prefix)
            if (
                not stream
                or not sample.name.startswith("alluse_")
                or sample.name.endswith(("_created", "_bucket", "_sum", "_count"))
            ):
                continue
            label = LABELS.get(sample.name, sample.name.removeprefix("alluse_"))
            if label not in columns:
                columns.append(label)
            rows.setdefault(stream, {})[label] = rows.get(stream, {}).get(label, 0) + sample.value
    return columns, dict(sorted(rows.items()))


async def probe(name: str, base: str, prefix: str) -> dict[str, Any]:
    (status, body), (m_status, metrics) = await asyncio.gather(
        asyncio.to_thread(_get, f"{base}/readyz"), asyncio.to_thread(_get, f"{base}/metrics")
    )
    try:
        ready = json.loads(body)
    except ValueError:
        ready = {"status": body[:200]}
    details = {k: v for k, v in ready.items() if k != "status"} if isinstance(ready, dict) else {}
    columns, streams = per_stream(metrics, prefix) if m_status == 200 else ([], {})
    return {
        "name": name,
        "url": base,
        "ready": status == 200,
        "http": status,
        "state": ready.get("status") if isinstance(ready, dict) else "?",
        "details": details,
        "columns": columns,
        "streams": streams,
    }


async def page(request: Request) -> Response:
    me = web.session(request)
    if not (web.can(me, Permission.MANAGE_ACCOUNTS) or web.can(me, Permission.AUDIT_ACCESS)):
        raise web.Forbidden(f"Your role '{me.role}' does not see the operations page.")
    settings = web.console(request).settings
    found = await asyncio.gather(
        *(probe(n, u, settings.stream_prefix) for n, u in settings.services.items())
    )
    return web.render(request, "operations.html", services=found, prefix=settings.stream_prefix)


def routes() -> list[BaseRoute]:
    return [Route("/operations", page)]
