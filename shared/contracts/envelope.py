"""CloudEvents 1.0 in binary mode over Redis Streams: one stream field per attribute."""

import hashlib
import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

MAX_ENTRY_BYTES = 256 * 1024
ATTRIBUTES = (
    "specversion", "id", "source", "type", "time", "datacontenttype", "subject",
    "dataschema", "authorization", "replyto", "correlationid", "causationid",
)  # fmt: skip


class EnvelopeError(ValueError):
    """An entry that is not a CloudEvent we can read: it goes to the dead-letter stream."""


class CloudEvent(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    specversion: Literal["1.0"]
    id: str = Field(min_length=1, max_length=200)
    source: str = Field(min_length=1, max_length=500)
    type: str = Field(min_length=1, max_length=200)
    time: AwareDatetime
    datacontenttype: Literal["application/json"] | None = None
    subject: str | None = Field(default=None, max_length=200)
    dataschema: str | None = Field(default=None, max_length=500)
    # Excluded from repr so a token never reaches a log line.
    authorization: str | None = Field(default=None, max_length=8192, repr=False)
    replyto: str | None = Field(default=None, max_length=200)
    correlationid: str | None = Field(default=None, max_length=200)
    causationid: str | None = Field(default=None, max_length=200)
    data: dict[str, Any]

    @property
    def key(self) -> tuple[str, str]:
        """The idempotency key: the same source and id are applied once."""
        return (self.source, self.id)

    def fingerprint(self) -> str:
        """What must match for a re-sent entry to count as the same command."""
        canon = json.dumps([self.type, self.subject, self.data], sort_keys=True, default=str)
        return hashlib.sha256(canon.encode()).hexdigest()


def explain(exc: ValidationError) -> str:
    """Every problem of a payload at once, each with the field it is about."""
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'data'}: {e['msg']}" for e in exc.errors())


def decode(fields: dict[bytes, bytes]) -> CloudEvent:
    size = sum(len(k) + len(v) for k, v in fields.items())
    if size > MAX_ENTRY_BYTES:
        raise EnvelopeError(f"entry of {size} bytes exceeds the {MAX_ENTRY_BYTES}-byte limit")
    try:
        attrs = {k.decode(): v.decode() for k, v in fields.items()}
    except UnicodeDecodeError as exc:
        raise EnvelopeError("entry is not UTF-8") from exc
    raw = attrs.pop("data", None)
    if raw is None:
        raise EnvelopeError("missing field 'data'")
    try:
        data = json.loads(raw, parse_float=Decimal)
    except json.JSONDecodeError as exc:
        raise EnvelopeError(f"field 'data' is not JSON: {exc.msg}") from exc
    if not isinstance(data, dict):
        raise EnvelopeError("field 'data' must be a JSON object")
    try:
        return CloudEvent.model_validate({**attrs, "data": data})
    except ValidationError as exc:
        raise EnvelopeError(f"not a CloudEvents 1.0 entry: {explain(exc)}") from exc


def _json_default(value: object) -> str:
    if isinstance(value, Decimal):
        return str(value)  # money stays an exact decimal string
    raise TypeError(f"cannot encode {type(value).__name__}")


def dumps(data: Any) -> str:
    """Compact JSON with sorted keys; UUIDs and datetimes (RFC 3339) natively, Decimal as a string."""
    return orjson.dumps(data, default=_json_default, option=orjson.OPT_SORT_KEYS).decode()


def new_event(
    type: str,
    source: str,
    data: dict[str, Any],
    *,
    subject: str | None = None,
    cause: CloudEvent | None = None,
    event_id: str | None = None,
    **attributes: str,
) -> dict[str, str]:
    """Stream fields of a new event; causation and correlation follow the causing entry."""
    fields = {
        "specversion": "1.0",
        "id": event_id or str(uuid.uuid4()),
        "source": source,
        "type": type,
        "time": datetime.now(UTC).isoformat(),
        "datacontenttype": "application/json",
        **attributes,
    }
    if subject:
        fields["subject"] = subject
    if cause is not None:
        fields["causationid"] = cause.id
        fields["correlationid"] = cause.correlationid or cause.id
    fields["data"] = dumps(data)
    return fields
