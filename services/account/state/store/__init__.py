"""Every SQL statement of the account service, one module per aggregate: accounts (and their
portfolios), ledger, growth, reads; import from the module that owns a statement. Functions take
a connection (a handler's: the unit of work's `db`, through services/account/state/repositories.py; a
query's: a pooled one) and keyword-only arguments; they return domain objects or plain rows.
Writes of accounts and ledger rows have one path: the unit of work's batched inserts."""
