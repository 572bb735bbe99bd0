-- The entry that claimed each reference, as its writer sent it (source, id): a fill re-sent
-- under a new entry id with the same figures is answered `alluse.entry.duplicate` naming that
-- entry. Claims made before this migration name none ('').
ALTER TABLE trade_refs
    ADD COLUMN entry_source text NOT NULL DEFAULT '',
    ADD COLUMN entry_id text NOT NULL DEFAULT '';
