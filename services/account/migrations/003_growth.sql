-- Growth (docs/rules.md sections 4-7): forks, merges, quarterly reinvestment, run-time settings.

-- When a row happened in the business's time: the causing message's time (clamped to now),
-- which the command handler puts in the transaction-local setting alluse.effective_at; else now.
-- A simulated decade can thus be replayed in minutes and still have weeks, months, quarters.
CREATE FUNCTION effective_now() RETURNS timestamptz LANGUAGE sql STABLE AS $$
    SELECT coalesce(nullif(current_setting('alluse.effective_at', true), '')::timestamptz, now())
$$;

ALTER TABLE transactions ADD COLUMN effective_at timestamptz NOT NULL DEFAULT effective_now();
UPDATE transactions SET effective_at = created_at;
CREATE INDEX transactions_account_effective ON transactions (account_id, effective_at);

-- Set when a Gen-Acc crosses its fork threshold, cleared when it falls back: one announcement
-- per crossing.
ALTER TABLE accounts ADD COLUMN fork_eligible boolean NOT NULL DEFAULT false;

CREATE TABLE forks (
    child_portfolio_id  uuid          PRIMARY KEY REFERENCES portfolios (id),
    parent_account_id   uuid          NOT NULL REFERENCES accounts (id),
    parent_portfolio_id uuid          NOT NULL REFERENCES portfolios (id),
    root_id             uuid          NOT NULL,
    surplus             numeric(20,2) NOT NULL CHECK (surplus > 0),
    to_generation       numeric(20,2) NOT NULL,
    to_compounding      numeric(20,2) NOT NULL,
    baseline            numeric(20,2) NOT NULL,
    automatic           boolean       NOT NULL,
    command_id          text          NOT NULL,
    at                  timestamptz   NOT NULL DEFAULT effective_now(),
    CHECK (to_generation + to_compounding = surplus)
);
CREATE INDEX forks_parent_account ON forks (parent_account_id, at);
CREATE INDEX forks_root ON forks (root_id, at);

CREATE TABLE merges (
    child_portfolio_id  uuid          PRIMARY KEY REFERENCES portfolios (id),  -- merges once
    target_portfolio_id uuid          NOT NULL REFERENCES portfolios (id),
    target_account_id   uuid          NOT NULL REFERENCES accounts (id),
    total               numeric(20,2) NOT NULL,
    automatic           boolean       NOT NULL,
    command_id          text          NOT NULL,
    at                  timestamptz   NOT NULL DEFAULT effective_now()
);

-- No money moves: the allocation is recorded. UNIQUE makes a second run (or replica) a no-op.
CREATE TABLE reinvestments (
    id               bigserial     PRIMARY KEY,
    account_id       uuid          NOT NULL REFERENCES accounts (id),
    quarter          text          NOT NULL,
    period_start     timestamptz   NOT NULL,
    period_end       timestamptz   NOT NULL,
    net_income       numeric(20,2) NOT NULL,
    contracts_pct    numeric(7,2)  NOT NULL,
    contracts_amount numeric(20,2) NOT NULL,
    leaps_amount     numeric(20,2) NOT NULL,
    command_id       text          NOT NULL,
    at               timestamptz   NOT NULL DEFAULT effective_now(),
    UNIQUE (account_id, quarter)
);

-- One row: the system-wide growth policy (auto-fork, split, cooling, daily limit, months).
CREATE TABLE growth_settings (
    id         boolean     PRIMARY KEY DEFAULT true CHECK (id),
    settings   jsonb       NOT NULL,
    command_id text        NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
