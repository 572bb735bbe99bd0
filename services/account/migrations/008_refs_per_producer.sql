-- A fill, assignment or expiration id is unique per producing engine, not across the platform:
-- the claim is keyed by the verified writer the integration service forwarded the effect for,
-- so a second engine reusing the first's fill id claims nothing of the first's. Claims made
-- before this migration keep the producer '' and still block that id for every producer.
ALTER TABLE trade_refs ADD COLUMN producer text NOT NULL DEFAULT '';
ALTER TABLE trade_refs DROP CONSTRAINT trade_refs_pkey;
-- (kind, ref_id) first: every lookup names them.
ALTER TABLE trade_refs ADD PRIMARY KEY (kind, ref_id, producer);
