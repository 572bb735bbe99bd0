"""Settings from the environment (ALLUSE_* variables, plus REDIS_URL and DATABASE_URL)."""

import os
import socket
import uuid

from pydantic import AliasChoices, Field, PositiveInt
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.contracts.streams import Streams


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
    consumer: str = Field(default_factory=_consumer_name)
    batch_size: PositiveInt = 500
    block_ms: PositiveInt = 50
    reclaim_idle_ms: PositiveInt = 30_000
    max_deliveries: PositiveInt = 5
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=0, ge=0, le=65535)
    log_level: str = "INFO"

    @property
    def streams(self) -> Streams:
        return Streams(self.stream_prefix)
