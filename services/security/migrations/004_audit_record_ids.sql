-- A record is chained once per (source, event_id): the audit consumer looks its records up
-- before it links them, whichever entry (one record, or a batch of them) brought them.
CREATE INDEX audit_records_event ON audit_records (event_id, source);
