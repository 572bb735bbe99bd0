-- Rows older than the deduplication window are deleted in batches, oldest first.
CREATE INDEX inbox_applied_at ON inbox (applied_at);
