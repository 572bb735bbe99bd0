-- Upstream references already applied (fills, assignments): the same id applies once, and
-- the same id with other figures is a conflict, never silently ignored.
CREATE TABLE trade_refs (
    kind        text        NOT NULL,
    ref_id      text        NOT NULL,
    account_id  uuid        NOT NULL REFERENCES accounts (id),
    fingerprint text        NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, ref_id)
);

CREATE TABLE violations (
    id          bigserial   PRIMARY KEY,
    account_id  uuid        NOT NULL REFERENCES accounts (id),
    trade_ref   text,
    detail      text        NOT NULL,
    week_type   text,
    source      text        NOT NULL,  -- 'platform' (our checks) or 'ws2'
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX violations_account ON violations (account_id, id);

ALTER TABLE accounts
    ADD COLUMN violations      integer       NOT NULL DEFAULT 0,
    ADD COLUMN positions_value numeric(20,2) NOT NULL DEFAULT 0,
    ADD COLUMN peak_value      numeric(20,2) NOT NULL DEFAULT 0,
    ADD COLUMN drawdown_pct    numeric(7,2)  NOT NULL DEFAULT 0,
    ADD COLUMN drawdown_breached boolean     NOT NULL DEFAULT false,
    ADD COLUMN valued_at       timestamptz;
