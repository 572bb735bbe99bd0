#!/bin/sh
# Run once by the postgres image on a fresh data directory (/docker-entrypoint-initdb.d/):
# one login role per service, each owning only its schema; the security schema is owned by
# `security_owner` (migrations) and used by `security` (runtime: rows only, and on the audit
# chain SELECT and INSERT, granted by the migrations). Nobody else may connect or create.
# Passwords come from the environment; ALLUSE_DB_ROLE_PREFIX (default none) prefixes every
# role name, for running this on a shared server.
set -eu
p="${ALLUSE_DB_ROLE_PREFIX:-}"
psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v db="$POSTGRES_DB" \
  -v account="${p}account" -v account_pw="$ALLUSE_DB_PASSWORD_ACCOUNT" \
  -v integration="${p}integration" -v integration_pw="$ALLUSE_DB_PASSWORD_INTEGRATION" \
  -v security_owner="${p}security_owner" -v security_owner_pw="$ALLUSE_DB_PASSWORD_SECURITY_OWNER" \
  -v security="${p}security" -v security_pw="$ALLUSE_DB_PASSWORD_SECURITY" <<'SQL'
CREATE ROLE :"account" LOGIN PASSWORD :'account_pw';
CREATE ROLE :"integration" LOGIN PASSWORD :'integration_pw';
CREATE ROLE :"security_owner" LOGIN PASSWORD :'security_owner_pw';
CREATE ROLE :"security" LOGIN PASSWORD :'security_pw';
REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
GRANT CONNECT ON DATABASE :"db" TO :"account", :"integration", :"security_owner", :"security";
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
CREATE SCHEMA account AUTHORIZATION :"account";
CREATE SCHEMA integration AUTHORIZATION :"integration";
CREATE SCHEMA security AUTHORIZATION :"security_owner";
SQL
