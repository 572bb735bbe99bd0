"""The console's settings (ALLUSE_* variables and REDIS_URL); it has no database of its own."""

from pydantic import AliasChoices, Field, PositiveInt
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.contracts.streams import Streams

DEFAULT_SERVICES = (
    "security=http://127.0.0.1:8081,account=http://127.0.0.1:8082,integration=http://127.0.0.1:8083"
)


class ConsoleSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ALLUSE_", extra="ignore")

    redis_url: str = Field(validation_alias=AliasChoices("REDIS_URL", "ALLUSE_REDIS_URL"))
    stream_prefix: str = ""
    # The security service: sign-in, refresh and revocation over HTTP; keys to verify tokens.
    security_url: str = "http://127.0.0.1:8081"
    jwks_url: str = "http://127.0.0.1:8081/.well-known/jwks.json"
    jwt_issuer: str = "alluse-security"
    jwt_audience: str = "alluse"
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8084, ge=0, le=65535)
    # Serve HTTPS itself (cookies then carry Secure); behind a TLS proxy, set secure_cookies.
    console_tls_cert: str | None = None
    console_tls_key: str | None = None
    console_secure_cookies: bool = False
    # name=url of each service whose /readyz and /metrics the operations page shows
    console_services: str = DEFAULT_SERVICES
    console_session_idle_seconds: PositiveInt = 1800
    console_session_max_seconds: PositiveInt = 12 * 3600
    console_max_sessions: PositiveInt = 1000
    # One user's sessions at most (a new one beyond ends the user's oldest): one user signing
    # in again and again never evicts another's session.
    console_max_sessions_per_user: PositiveInt = 5
    console_max_live_feeds: PositiveInt = 100
    console_timeout_seconds: float = Field(default=10.0, gt=0)
    # The console's lane (docs/lanes.md): its users' commands and queries go there, and their
    # outcomes are believed only from its outcome stream. Empty: the shared streams (only
    # where lanes are open).
    console_lane: str = "console"
    log_level: str = "INFO"

    @property
    def streams(self) -> Streams:
        return Streams(self.stream_prefix)

    @property
    def services(self) -> dict[str, str]:
        pairs = (p.partition("=") for p in self.console_services.split(",") if p.strip())
        return {name.strip(): url.strip().rstrip("/") for name, _, url in pairs}

    @property
    def tls(self) -> bool:
        return bool(self.console_tls_cert and self.console_tls_key)
