"""CloudEvents 1.0 in binary mode over Redis Streams: one stream field per attribute.

The platform reads each attribute from its own field (`specversion`, `id`, `source`, `type`,
`time`, ...) and the payload from the field `data` (JSON). It dead-letters anything else, such
as FastStream's own envelope, which packs everything into one field.
"""

import json
import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

# uuid5 namespace of the ids this library derives: the same event gets the same id however
# often it is published, so the platform applies it once.
NAMESPACE = uuid.UUID("6f1f8a52-6d1e-4f36-9a7c-2b1f3c0a9e11")

# The fields of each upstream type that name one event uniquely for its producer.
NATURAL_KEYS: dict[str, tuple[str, ...]] = {
    "ws2.week.classified": ("week_start", "symbol"),
    "ws2.protocol.validated": ("account_id", "trade_ref"),
    "ws4.trade.filled": ("fill_id",),
    "ws4.option.assigned": ("assignment_id",),
    "ws4.option.expired": ("expiration_id",),
    "ws4.account.valuation": ("account_id", "as_of"),
    "ws4.market.quote": ("symbol", "as_of"),
}


def _default(value: object) -> str:
    if isinstance(value, Decimal):
        return str(value)  # money travels as an exact decimal string
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("datetimes must carry a time zone (the platform refuses naive ones)")
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def dumps(data: Any) -> str:
    """Compact JSON; Decimal as a string, dates and aware datetimes as ISO 8601."""
    return json.dumps(data, default=_default, separators=(",", ":"), sort_keys=True)


def idempotent_id(type_: str, source: str, data: Mapping[str, Any]) -> str:
    """A CloudEvents id derived from the event's natural key (e.g. a fill's `fill_id`): the same
    fill published twice, after a crash or a retry, carries the same id and is applied once."""
    names = NATURAL_KEYS.get(type_)
    if names is None:
        raise ValueError(f"no natural key known for {type_!r}: pass an explicit id")
    missing = [n for n in names if n not in data and n != "symbol"]
    if missing:
        raise ValueError(f"{type_} needs {', '.join(missing)} to derive its id")
    natural = dumps([type_, source, *[data.get(n) for n in names]])
    return str(uuid.uuid5(NAMESPACE, natural))


def binary_fields(
    type_: str,
    source: str,
    data: Mapping[str, Any],
    *,
    id: str | None = None,
    subject: str | None = None,
    token: str | None = None,
    time: datetime | None = None,
    **attributes: str,
) -> dict[str, str]:
    """The stream fields of one binary-mode CloudEvent, ready for XADD.

    `id` defaults to `idempotent_id` for the upstream types and a random UUID otherwise;
    `token` becomes the `authorization` field (`Bearer <token>`).
    """
    if id is None:
        id = idempotent_id(type_, source, data) if type_ in NATURAL_KEYS else str(uuid.uuid4())
    fields = {
        "specversion": "1.0",
        "id": id,
        "source": source,
        "type": type_,
        "time": (time or datetime.now(UTC)).isoformat(),
        "datacontenttype": "application/json",
        **attributes,
    }
    if subject:
        fields["subject"] = subject
    if token:
        fields["authorization"] = f"Bearer {token}"
    fields["data"] = dumps(data)
    return fields
