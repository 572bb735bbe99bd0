-- Shares bought or sold by a fill get a ledger type of their own (they were booked as
-- trade_assignment, which only an assignment should be).
ALTER TABLE transactions DROP CONSTRAINT transactions_type_check;
ALTER TABLE transactions ADD CONSTRAINT transactions_type_check CHECK (type IN ('deposit',
    'withdrawal', 'trade_premium', 'trade_assignment', 'trade_shares', 'fee', 'reinvestment',
    'fork_transfer', 'merge_transfer', 'cash_buffer_adjustment'));
