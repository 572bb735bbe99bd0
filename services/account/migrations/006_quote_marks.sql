-- A value point written because a quote moved the marks (not because the account changed):
-- each account keeps only the last of these per business day, so a busy quote feed cannot
-- grow the books without bound.
ALTER TABLE account_values ADD COLUMN by_quote boolean NOT NULL DEFAULT false;
