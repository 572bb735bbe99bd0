-- The inbox's copy of an outcome and the outbox's events are only ever written and read back
-- whole, never queried inside: kept as the JSON text the service sent, so PostgreSQL no longer
-- parses every event into jsonb twice per command (once for each copy).
ALTER TABLE inbox ALTER COLUMN outcome TYPE text;
ALTER TABLE outbox ALTER COLUMN fields TYPE text;
