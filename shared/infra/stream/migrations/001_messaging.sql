-- Inbox: one row per (source, id) applied, written in the same transaction as the effect.
CREATE TABLE inbox (
    source      text        NOT NULL,
    id          text        NOT NULL,
    type        text        NOT NULL,
    fingerprint text        NOT NULL,
    -- The outcome events, re-published as they were when the same entry comes again.
    outcome     jsonb       NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, id)
);

-- Outbox: events committed with their effect, relayed to Redis afterwards in seq order.
CREATE TABLE outbox (
    seq        bigserial   PRIMARY KEY,
    stream     text        NOT NULL,
    fields     jsonb       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
