"""Settings from the environment (ALLUSE_* variables, plus REDIS_URL and DATABASE_URL)."""

import os
import socket
import uuid
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    BeforeValidator,
    Field,
    NonNegativeFloat,
    PositiveFloat,
    PositiveInt,
    SecretStr,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.contracts.envelope import Limits
from shared.contracts.streams import Streams


def _seconds(value: Any) -> Any:
    """An environment value of plain seconds ("60", "0.5") as a number: pydantic reads a
    string duration only in ISO 8601 (PT60S)."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


Duration = Annotated[timedelta, BeforeValidator(_seconds)]


def _consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ALLUSE_", extra="ignore")

    redis_url: str = Field(validation_alias=AliasChoices("REDIS_URL", "ALLUSE_REDIS_URL"))
    database_url: str = Field(
        validation_alias=AliasChoices("DATABASE_URL", "ALLUSE_DATABASE_URL"), repr=False
    )
    stream_prefix: str = ""
    # Where the security service publishes its signing keys (http(s):// or file://).
    jwks_url: str = "http://127.0.0.1:8081/.well-known/jwks.json"
    jwt_issuer: str = "alluse-security"
    jwt_audience: str = "alluse"
    # The JWKS is refetched this often; a key it no longer lists is dropped `grace` later.
    jwks_refresh_seconds: PositiveFloat = 300
    jwks_grace_seconds: NonNegativeFloat = 60
    # This service's own Ed25519 key (base64url seed): it signs every entry the service writes.
    signing_key: SecretStr = SecretStr("")
    consumer: str = Field(default_factory=_consumer_name)
    batch_size: PositiveInt = 500
    block_ms: PositiveInt = 50
    reclaim_idle_ms: PositiveInt = 30_000
    max_deliveries: PositiveInt = 5
    # Ordered consumption (docs/architecture.md "Scaling out"): partitions per logical stream (the
    # same value in the account and integration services: the latter writes effects into them,
    # straight while the account service's router counts as many),
    # and how long a replica's lease on one outlives its last renewal (the takeover time after a crash).
    partitions: PositiveInt = 16
    partition_lease_ms: PositiveInt = 10_000
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=0, ge=0, le=65535)
    log_level: str = "INFO"
    # What one inbound entry may be; beyond it, the entry is dead-lettered with the reason.
    max_entry_bytes: PositiveInt = 256 * 1024
    max_json_depth: PositiveInt = 32
    max_string_length: PositiveInt = 65_536
    # How far before now a client's command may be dated (its `time` dates the rows it writes);
    # admins and operators, who backfill and correct, are not bound (docs/integration.md "The wire contract").
    backdate_limit: Duration = timedelta(minutes=15)
    # Retention (docs/architecture.md "Retention"): durations as seconds or ISO 8601 (P7D, PT1H).
    # An inbox row older than the window is deleted: the same (source, id) re-sent after it
    # is applied again, as with any idempotency-key store.
    dedup_window: Duration = timedelta(days=7)
    lifecycle_retention: Duration = timedelta(days=7)  # alluse.account.lifecycle
    account_events_retention: Duration = timedelta(days=1)  # alluse.internal.account.events
    audit_retention: Duration = timedelta(days=1)  # alluse.audit (the chain keeps every record)
    dlq_retention: Duration = timedelta(days=14)  # every <stream>.dlq
    upstream_retention: Duration = timedelta(days=1)  # ws2.protocol.events, ws4.market.events
    retention_interval: Duration = timedelta(seconds=60)  # how often trimming and pruning run
    # Whether the relay waits for Redis to make each published event durable before it deletes
    # the outbox row: "auto" = when the server has AOF on; "required"; "off".
    # Lanes (docs/lanes.md): "required" refuses a client's entry written straight to a shared
    # stream (`forbidden`, "write to your lane"); "open" takes those too, for a Redis without
    # the ACL file and a single trusted writer (each service says so at start, as a WARNING).
    lanes: Literal["required", "open"] = "required"
    outcome_retention: Duration = timedelta(days=1)  # alluse.outcomes.<lane>
    redis_durability: Literal["auto", "required", "off"] = "auto"
    redis_durability_timeout_ms: PositiveInt = 2_000
    # Fairness (docs/scopes.md, "Limits"): a token bucket per verified client in each service
    # process; over it, a command or query is refused `rate_limited`. A rate of 0 turns the
    # limit off (a benchmark measuring the platform, not one client's share of it).
    rate_commands_per_second: NonNegativeFloat = 200
    rate_commands_burst: PositiveInt = 2_000
    rate_queries_per_second: NonNegativeFloat = 50
    rate_queries_burst: PositiveInt = 200
    # Reply streams the account service made for one client: the oldest beyond the cap is
    # deleted, and each expires this long after its answer (the CLI waits 10 s at most).
    replies_per_client: PositiveInt = 100
    reply_ttl_seconds: PositiveInt = 300

    @property
    def streams(self) -> Streams:
        return Streams(self.stream_prefix)

    @property
    def limits(self) -> Limits:
        return Limits(self.max_entry_bytes, self.max_json_depth, self.max_string_length)
