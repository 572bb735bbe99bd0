CREATE TABLE counter (name text PRIMARY KEY, value numeric NOT NULL);
