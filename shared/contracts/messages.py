"""Message types the platform itself answers with, spelled once for services, CLI and tests."""

COMMAND_REJECTED = "alluse.command.rejected"
QUERY_RESULT = "alluse.query.result"
QUERY_FAILED = "alluse.query.failed"
WEEK_CHANGED = "alluse.week.changed"
AUDIT_RECORDED = "alluse.audit.recorded"
