-- The value of positions a merge carried into (positive) or out of (negative) an account at
-- that value point: a flow, like the cash moved with them, so returns and drawdown never count
-- it as a gain or a loss.
ALTER TABLE account_values ADD COLUMN flow numeric(20,2) NOT NULL DEFAULT 0;
