-- Positions and value (docs/rules.md section 11).

-- What each account holds now; always the sum of its position_moves (alluse integrity checks).
CREATE TABLE positions (
    account_id  uuid          NOT NULL REFERENCES accounts (id),
    contract    text          NOT NULL,  -- the ticker for shares, the OCC symbol for an option
    symbol      text          NOT NULL,
    option_type text          CHECK (option_type IN ('put', 'call')),
    strike      numeric(18,4),
    expiration  date,
    multiplier  integer       NOT NULL,
    quantity    integer       NOT NULL,  -- signed: short is negative
    cost        numeric(20,2) NOT NULL,  -- signed cost basis of the open quantity
    updated_at  timestamptz   NOT NULL DEFAULT effective_now(),
    PRIMARY KEY (account_id, contract)
);

-- Append-only history: every change of a position, with the ledger row it came with (if any)
-- and its cause. As-of queries and corrections read it; nothing edits it.
CREATE TABLE position_moves (
    id             bigserial     PRIMARY KEY,
    account_id     uuid          NOT NULL REFERENCES accounts (id),
    contract       text          NOT NULL,
    symbol         text          NOT NULL,
    option_type    text,
    strike         numeric(18,4),
    expiration     date,
    multiplier     integer       NOT NULL,
    quantity       integer       NOT NULL,
    cost           numeric(20,2) NOT NULL,
    quantity_after integer       NOT NULL,
    cost_after     numeric(20,2) NOT NULL,
    transaction_id bigint        REFERENCES transactions (id),
    cause          text          NOT NULL,  -- fill, assignment, expiration, reversal
    reference      text,                    -- the fill, assignment or expiration id
    command_id     text          NOT NULL,
    effective_at   timestamptz   NOT NULL DEFAULT effective_now()
);
CREATE INDEX position_moves_account ON position_moves (account_id, contract, effective_at, id);
CREATE INDEX position_moves_transaction ON position_moves (transaction_id);

-- Quotes for marks: the latest of each symbol per day, so as-of values can be marked as they
-- were; at most one row per symbol and day, pruned after the quote_retention_days setting.
CREATE TABLE quotes (
    symbol text          NOT NULL,
    day    date          NOT NULL,
    bid    numeric(18,4) NOT NULL,
    ask    numeric(18,4) NOT NULL,
    last   numeric(18,4) NOT NULL,
    as_of  timestamptz   NOT NULL,
    PRIMARY KEY (symbol, day)
);

-- The account's value at each change of its positions or marks (cash + marked positions), the
-- series drawdown and the metrics of section 7 run on; broker_value is WS4's own figure.
CREATE TABLE account_values (
    id              bigserial     PRIMARY KEY,
    account_id      uuid          NOT NULL REFERENCES accounts (id),
    cash            numeric(20,2) NOT NULL,
    positions_value numeric(20,2) NOT NULL,
    broker_value    numeric(20,2),
    effective_at    timestamptz   NOT NULL DEFAULT effective_now()
);
CREATE INDEX account_values_account ON account_values (account_id, effective_at, id);

-- A correction names the entry it reverses; UNIQUE: each entry is reversed at most once.
ALTER TABLE transactions ADD COLUMN reverses bigint UNIQUE REFERENCES transactions (id);
ALTER TABLE transactions ADD COLUMN reason text;

-- Money moved in or out (deposits, withdrawals, fork and merge transfers) moves the drawdown's
-- peak with it, so a fork or a withdrawal is never announced as a loss: the ledger rows up to
-- valued_through have been taken into the peak.
ALTER TABLE accounts ADD COLUMN valued_through bigint NOT NULL DEFAULT 0;
