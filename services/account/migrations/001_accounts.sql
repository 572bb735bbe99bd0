CREATE TABLE portfolios (
    id          uuid        PRIMARY KEY,
    parent_id   uuid        REFERENCES portfolios (id),
    root_id     uuid        NOT NULL,
    generation  integer     NOT NULL DEFAULT 0,
    name        text        NOT NULL,
    template    text,
    strategy    text,
    risk        jsonb       NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE accounts (
    id           uuid          PRIMARY KEY,
    portfolio_id uuid          NOT NULL REFERENCES portfolios (id),
    type         text          NOT NULL CHECK (type IN ('generation', 'revenue', 'compounding')),
    status       text          NOT NULL CHECK (status IN
                   ('active', 'inactive', 'suspended', 'closed', 'forking', 'merging', 'merged')),
    name         text          NOT NULL,
    balance      numeric(20,2) NOT NULL,
    contributed  numeric(20,2) NOT NULL CHECK (contributed >= 0),
    baseline     numeric(20,2) NOT NULL,
    config       jsonb         NOT NULL,
    created_at   timestamptz   NOT NULL DEFAULT now(),
    updated_at   timestamptz   NOT NULL DEFAULT now(),
    UNIQUE (portfolio_id, type)  -- a portfolio holds one account of each type
);
CREATE INDEX accounts_status ON accounts (status);

-- The ledger: every balance change is a row; balance = sum(amount) per account.
CREATE TABLE transactions (
    id            bigserial     PRIMARY KEY,
    account_id    uuid          NOT NULL REFERENCES accounts (id),
    type          text          NOT NULL CHECK (type IN ('deposit', 'withdrawal', 'trade_premium',
                    'trade_assignment', 'fee', 'reinvestment', 'fork_transfer', 'merge_transfer',
                    'cash_buffer_adjustment')),
    amount        numeric(20,2) NOT NULL,
    balance_after numeric(20,2) NOT NULL,
    description   text          NOT NULL DEFAULT '',
    reference     text,
    week_type     text,
    command_id    text,
    created_at    timestamptz   NOT NULL DEFAULT now()
);
CREATE INDEX transactions_account ON transactions (account_id, id);
CREATE INDEX transactions_account_type ON transactions (account_id, type, id);
