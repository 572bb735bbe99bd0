-- Week types as WS2 classified them; the current one is the latest week_start.
CREATE TABLE week_types (
    week_start  date        PRIMARY KEY,
    week_type   text        NOT NULL,
    confidence  numeric     NOT NULL,
    source      text        NOT NULL,
    event_id    text        NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);

-- The latest quote per symbol, kept for marks; an older quote never replaces a newer one.
CREATE TABLE quotes (
    symbol      text          PRIMARY KEY,
    bid         numeric(18,4) NOT NULL,
    ask         numeric(18,4) NOT NULL,
    last        numeric(18,4) NOT NULL,
    as_of       timestamptz   NOT NULL,
    source      text          NOT NULL,
    recorded_at timestamptz   NOT NULL DEFAULT now()
);
