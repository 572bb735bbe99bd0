"""The security service's settings: the shared ones plus keys, lifetimes, lockout and argon2."""

from datetime import timedelta

from pydantic import Field, NonNegativeInt, PositiveInt, SecretStr

from shared.infra.runtime.settings import Duration, Settings


class SecuritySettings(Settings):
    http_port: int = Field(default=8081, ge=0, le=65535)
    # Machine clients' Redis users (services/security/redis_users.py): a connection allowed to
    # run ACL SETUSER on the running Redis (ALLUSE_REDIS_ADMIN_URL; its credentials are the
    # deployment's, never a default), and the generated ACL file to keep them in.
    redis_admin_url: SecretStr = SecretStr("")
    redis_acl_file: str = ""
    # Comma-separated Fernet keys, primary first (ALLUSE_ENCRYPTION_KEYS); never generated here.
    encryption_keys: SecretStr = SecretStr("")
    # Comma-separated audit chain HMAC keys, newest first (ALLUSE_AUDIT_KEYS); never generated.
    audit_keys: SecretStr = SecretStr("")
    # The schema owner's URL for migrations (ALLUSE_MIGRATION_DATABASE_URL); DATABASE_URL's role
    # is then the runtime role, granted rows but never UPDATE or DELETE on the audit chain.
    migration_database_url: str = Field(default="", repr=False)
    # Seconds between publications of the chain's (signed) head while it grows: rows written
    # after the last head are the only ones whose loss a head cannot show.
    audit_head_every: PositiveInt = 2
    # Milliseconds a batch of the audit stream smaller than a full read waits for the entries
    # behind it, read with it (services/security/audit_reader.py); 0: none. Well within
    # ALLUSE_AUDIT_HEAD_EVERY, and nothing waits on the chain.
    audit_linger_ms: NonNegativeInt = 200
    # Seconds between the audit records that sum up token requests refused before anyone was
    # identified (services/security/failures.py); each is counted in a metric at once.
    unauthenticated_audit_every: PositiveInt = 60
    # How long a published head stays on alluse.audit.heads (it pins the chain up to it).
    audit_heads_retention: Duration = timedelta(days=30)
    # The other services' public signing keys, published in the JWKS bound to their names:
    # "account=<base64url>,integration=<base64url>" (`alluse security gen-service-keys`).
    service_keys: str = ""
    access_token_ttl: PositiveInt = 900
    refresh_token_ttl: PositiveInt = 14 * 86400
    # Sessions (refresh families) one user may hold; a new sign-in beyond ends its own oldest.
    max_sessions_per_user: PositiveInt = 10
    max_failed_logins: PositiveInt = 5
    lockout_seconds: PositiveInt = 900
    audit_check_seconds: PositiveInt = 300  # how often the service re-verifies its audit chain
    # OWASP Password Storage Cheat Sheet, argon2id: m=19 MiB, t=2, p=1.
    argon2_memory_kib: PositiveInt = 19456
    argon2_time_cost: PositiveInt = 2
    argon2_parallelism: PositiveInt = 1
