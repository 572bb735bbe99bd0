-- Identities, tokens, signing keys and the append-only audit chain of the security service.
CREATE TABLE users (
    id            uuid        PRIMARY KEY,
    username      text        NOT NULL UNIQUE CHECK (length(username) BETWEEN 1 AND 150),
    email_enc     text,       -- Fernet token (MultiFernet from ALLUSE_ENCRYPTION_KEYS)
    password_hash text        NOT NULL,  -- PHC string, argon2id
    role          text        NOT NULL
        CHECK (role IN ('admin', 'operator', 'trading_engine', 'viewer', 'auditor')),
    status        text        NOT NULL DEFAULT 'active'
        CHECK (status IN ('active', 'locked', 'disabled', 'deleted')),
    failed_logins integer     NOT NULL DEFAULT 0,
    locked_until  timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE clients (
    client_id   text        PRIMARY KEY CHECK (length(client_id) BETWEEN 1 AND 150),
    secret_hash text        NOT NULL,  -- SHA-256 of a 256-bit random secret
    role        text        NOT NULL DEFAULT 'trading_engine'
        CHECK (role IN ('admin', 'operator', 'trading_engine', 'viewer', 'auditor')),
    status      text        NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE signing_keys (
    kid         text        PRIMARY KEY,
    alg         text        NOT NULL,
    private_enc text        NOT NULL,  -- PKCS#8 PEM inside a Fernet token
    public_jwk  jsonb       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    retired_at  timestamptz,           -- stops signing
    expires_at  timestamptz            -- leaves the JWKS: its last token has expired
);
-- Exactly one key signs at a time.
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys ((true)) WHERE retired_at IS NULL;

CREATE TABLE refresh_tokens (
    token_hash     text        PRIMARY KEY,  -- SHA-256 of the opaque token
    family         uuid        NOT NULL,
    user_id        uuid        NOT NULL REFERENCES users (id),
    access_jti     text        NOT NULL,     -- the access token issued beside it
    access_expires timestamptz NOT NULL,
    issued_at      timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    spent_at       timestamptz,              -- rotated: used once, never again
    revoked_at     timestamptz
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family);
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);

CREATE TABLE revoked_jtis (
    jti        text        PRIMARY KEY,
    until      timestamptz NOT NULL,
    revoked_at timestamptz NOT NULL DEFAULT now()
);

-- The chain head: locked FOR UPDATE to serialise appends; also reveals a deleted last row.
CREATE TABLE audit_head (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    seq      bigint  NOT NULL,
    hash     text    NOT NULL
);
INSERT INTO audit_head VALUES (true, 0, repeat('0', 64));

CREATE TABLE audit_records (
    seq         bigint      PRIMARY KEY,
    event_id    text        NOT NULL,
    occurred_at timestamptz NOT NULL,
    source      text        NOT NULL,
    action      text        NOT NULL,
    actor       text        NOT NULL,
    subject     text,
    details     text        NOT NULL,  -- canonical JSON, hashed as stored
    cause       text,
    prev_hash   text        NOT NULL,
    hash        text        NOT NULL
);
CREATE INDEX audit_records_actor ON audit_records (actor, occurred_at);
CREATE INDEX audit_records_subject ON audit_records (subject, occurred_at);
CREATE INDEX audit_records_action ON audit_records (action, occurred_at);
CREATE INDEX audit_records_time ON audit_records (occurred_at);

CREATE FUNCTION audit_records_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_records is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER audit_records_no_change BEFORE UPDATE OR DELETE ON audit_records
    FOR EACH ROW EXECUTE FUNCTION audit_records_append_only();
CREATE TRIGGER audit_records_no_truncate BEFORE TRUNCATE ON audit_records
    FOR EACH STATEMENT EXECUTE FUNCTION audit_records_append_only();
