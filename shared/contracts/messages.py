"""Message types the platform itself answers with, spelled once for services, CLI and tests."""

COMMAND_REJECTED = "alluse.command.rejected"
QUERY_RESULT = "alluse.query.result"
QUERY_FAILED = "alluse.query.failed"
WEEK_CHANGED = "alluse.week.changed"
AUDIT_RECORDED = "alluse.audit.recorded"
# Many audit records in one entry (contract 1.2): a service's records of one batch, signed once.
AUDIT_BATCH = "alluse.audit.batch"
AUDIT_TYPES = (AUDIT_RECORDED, AUDIT_BATCH)
