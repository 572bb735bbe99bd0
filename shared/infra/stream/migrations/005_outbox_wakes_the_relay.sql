-- A commit that wrote outbox rows wakes the relay, in whichever process it ran (another
-- replica's too), instead of the relay looking for rows every 50 ms: NOTIFY is delivered when
-- the transaction commits, once per transaction however many statements raised it.
CREATE FUNCTION outbox_committed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('alluse_outbox_' || TG_TABLE_SCHEMA, '');
    RETURN NULL;
END
$$;
CREATE TRIGGER outbox_committed AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_committed();
