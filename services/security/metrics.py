"""The security service's own Prometheus metrics (only its process exposes them)."""

from prometheus_client import Counter, Gauge

LOGINS = Counter("alluse_logins_total", "Token requests by grant and outcome", ["grant", "outcome"])
LOCKOUTS = Counter("alluse_lockouts_total", "Users locked after too many failed logins")
AUDIT_INTACT = Gauge(
    "alluse_audit_chain_intact", "1 when the last audit chain check found it intact"
)
AUDIT_CHECKED = Gauge("alluse_audit_chain_records", "Records the last audit chain check covered")
AUDIT_CHECKED_AT = Gauge(
    "alluse_audit_chain_checked_timestamp_seconds", "When the audit chain was last checked"
)
