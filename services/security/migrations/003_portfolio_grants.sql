-- Portfolio scopes: which portfolios a machine client or a user may act on and read. A token
-- carries its holder's grants as the `portfolios` claim; '*' is the whole platform. Admins and
-- operators hold the whole platform by role and need no row here.
CREATE TABLE portfolio_grants (
    grantee_kind text        NOT NULL CHECK (grantee_kind IN ('client', 'user')),
    grantee      text        NOT NULL,  -- a client id, or a user's id
    portfolio    text        NOT NULL
        CHECK (portfolio = '*' OR portfolio ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'),
    granted_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (grantee_kind, grantee, portfolio)
);
