-- The audit chain is keyed: each record names the HMAC key (held outside the database) its
-- link was computed with. Records from before carry NULL and a plain SHA-256 link.
ALTER TABLE audit_records ADD COLUMN key_id text;
