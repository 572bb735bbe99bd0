#!/bin/sh
# One login role per service, each owning only its schema; the security schema is owned by
# `security_owner` (migrations) and used by `security` (runtime: rows only, and on the audit
# chain SELECT and INSERT, granted by the migrations). Nobody else may connect to the platform's
# database or create in it, and the service roles may not connect to the server's maintenance
# databases either (ALLUSE_DB_CLOSED_DATABASES, default `postgres template1`: open to PUBLIC on
# a fresh server, and a stolen service password should reach nothing but its own schema).
#
# Run by the postgres image on a fresh data directory (/docker-entrypoint-initdb.d/), and by the
# Kubernetes Job `alluse-postgres-roles` against the cluster's server (PGHOST, PGPORT,
# PGPASSWORD of a role that may create roles). It may run again: missing roles and schemas are
# made, existing roles get the passwords given now (so re-running it rotates them).
# POSTGRES_USER / POSTGRES_DB: who runs it and the platform's database. ALLUSE_DB_ROLE_PREFIX
# (default none) prefixes every role name, for running this on a shared server.
set -eu
p="${ALLUSE_DB_ROLE_PREFIX:-}"
closed="${ALLUSE_DB_CLOSED_DATABASES:-postgres template1}"
psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v db="$POSTGRES_DB" -v closed="$closed" \
  -v account="${p}account" -v account_pw="$ALLUSE_DB_PASSWORD_ACCOUNT" \
  -v integration="${p}integration" -v integration_pw="$ALLUSE_DB_PASSWORD_INTEGRATION" \
  -v security_owner="${p}security_owner" -v security_owner_pw="$ALLUSE_DB_PASSWORD_SECURITY_OWNER" \
  -v security="${p}security" -v security_pw="$ALLUSE_DB_PASSWORD_SECURITY" <<'SQL'
-- psql does not substitute variables inside DO bodies: each conditional statement is built by a
-- SELECT and run by \gexec.
SELECT format('CREATE ROLE %I LOGIN', r) FROM unnest(ARRAY[:'account', :'integration',
  :'security_owner', :'security']) AS r WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r)
\gexec
ALTER ROLE :"account" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'account_pw';
ALTER ROLE :"integration" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'integration_pw';
ALTER ROLE :"security_owner" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'security_owner_pw';
ALTER ROLE :"security" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'security_pw';
REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
GRANT CONNECT ON DATABASE :"db" TO :"account", :"integration", :"security_owner", :"security";
-- CONNECT on a database is PUBLIC's by default and cannot be revoked from one role alone.
SELECT format('REVOKE CONNECT, TEMPORARY ON DATABASE %I FROM PUBLIC', d)
  FROM unnest(string_to_array(:'closed', ' ')) AS d WHERE d <> '' AND d <> :'db'
\gexec
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
CREATE SCHEMA IF NOT EXISTS account AUTHORIZATION :"account";
CREATE SCHEMA IF NOT EXISTS integration AUTHORIZATION :"integration";
CREATE SCHEMA IF NOT EXISTS security AUTHORIZATION :"security_owner";
SQL
