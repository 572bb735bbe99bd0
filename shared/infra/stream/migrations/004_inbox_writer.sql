-- The idempotency key includes the verified writer (client:<token subject>, service:<signer>,
-- platform:<what>): two principals never share a key, so one cannot claim, block or replay
-- into another's (source, id). Rows applied before this migration keep the writer '' and are
-- matched for every writer until the deduplication window forgets them (shared/infra/inbox.py).
ALTER TABLE inbox ADD COLUMN writer text NOT NULL DEFAULT '';
ALTER TABLE inbox DROP CONSTRAINT inbox_pkey;
-- (source, id) first: every lookup names them, and few writers ever share one.
ALTER TABLE inbox ADD PRIMARY KEY (source, id, writer);
