"""The arguments of `python -m services.security admin` (met by operators as `alluse security`)."""

import argparse
import asyncio
import os
import sys
import uuid
from datetime import datetime
from pathlib import Path

from services.security import console, crypto, redis_acl
from services.security.chain import Head
from services.security.console import ROLES, Command
from shared.contracts.trust import SECURITY
from shared.infra.trust.signing import identity_env, new_identities


def head(text: str) -> Head:
    seq, _, hash_ = text.partition(":")
    if not seq.isdigit() or len(hash_) != 64:
        raise argparse.ArgumentTypeError("expected SEQ:HASH (a number and 64 hex digits)")
    return Head(int(seq), hash_.lower())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="alluse security",
        description="Administer the security service: users, machine clients, keys and the"
        " audit trail (DATABASE_URL, REDIS_URL, ALLUSE_ENCRYPTION_KEYS).",
    )
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    def add(name: str, command: Command, help_: str) -> argparse.ArgumentParser:
        # No abbreviations: `--password X` must not pass for `--password-file X`.
        p = sub.add_parser(name, help=help_, description=help_, allow_abbrev=False)
        p.set_defaults(command=command)
        return p

    def user_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--username", required=True)
        p.add_argument("--email", help="stored encrypted")
        p.add_argument("--password-file", help="read the password from this file ('-': stdin)")

    user_args(
        add(
            "create-admin",
            console.create_user,
            "create an admin (password from a prompt or a file)",
        )
    )
    p = add("create-user", console.create_user, "create a user (password from a prompt or a file)")
    user_args(p)
    p.add_argument("--role", required=True, choices=ROLES)
    p = add(
        "create-client", console.create_client, "create a machine client; prints its secret once"
    )
    p.add_argument("--client-id", required=True)
    p.add_argument("--role", default="trading_engine", choices=ROLES)
    p.add_argument(
        "--portfolio",
        action="append",
        default=[],
        help="grant this portfolio id ('*': the whole platform); repeatable",
    )
    p = add("grant", console.grant, "give a client or a user a portfolio ('*': the whole platform)")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--client", help="client id")
    who.add_argument("--user", help="username")
    p.add_argument("--portfolio", required=True, help="a portfolio id, or '*'")
    p = add("scopes", console.scopes, "the portfolios a client or a user may act on and read")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--client", help="client id")
    who.add_argument("--user", help="username")
    for name, status, help_ in (
        ("disable-client", "disabled", "refuse a client's logins; its live tokens are revoked"),
        ("enable-client", "active", "let a disabled client log in again"),
    ):
        p = add(name, console.client_status, help_)
        p.add_argument("client_id")
        p.set_defaults(status=status)
    p = add(
        "rotate-client-secret",
        console.rotate_client,
        "give a client a new secret (printed once); the old one and its tokens stop working",
    )
    p.add_argument("client_id")
    p = add("set-role", console.set_role, "change a user's role (its live tokens are revoked)")
    p.add_argument("username")
    p.add_argument("role", choices=ROLES)
    p = add("unlock", console.set_status, "unlock a user locked by failed logins")
    p.add_argument("username")
    p.set_defaults(status="active")
    p = add("set-status", console.set_status, "lock, disable, delete or re-activate a user")
    p.add_argument("username")
    p.add_argument("status", choices=["active", "locked", "disabled", "deleted"])
    add(
        "rotate-signing-key",
        console.rotate_signing,
        "sign with a new key; old keys stay in the JWKS until their tokens expire",
    )
    add(
        "rotate-encryption-key",
        console.rotate_encryption,
        "re-encrypt every encrypted value under the first ALLUSE_ENCRYPTION_KEYS key",
    )
    p = add(
        "verify-audit",
        console.verify_audit,
        "check the audit chain (its keys and every published head); names the first broken link",
    )
    p.add_argument(
        "--head",
        type=head,
        action="append",
        default=[],
        metavar="SEQ:HASH",
        help="also check against this head (e.g. from the security service's log)",
    )
    p = add("audit", console.audit_query, "query audit records")
    p.add_argument("--user", help="actor (a user id, client id, or cli:<name>)")
    p.add_argument("--account", help="subject (an account id, user id, ...)")
    p.add_argument("--type", help="action, e.g. security.login.failed")
    p.add_argument("--since", type=datetime.fromisoformat, help="ISO time, inclusive")
    p.add_argument("--until", type=datetime.fromisoformat, help="ISO time, exclusive")
    p.add_argument("--limit", type=int, default=100)
    add(
        "record-audit",
        console.record_audit,
        "append an operator tool's records (a JSON list on stdin, e.g. DLQ re-drives) to the chain",
    )
    p = add("sessions", console.sessions, "list live refresh-token families")
    p.add_argument("--username")
    p = add(
        "revoke",
        console.revoke,
        "revoke a user's tokens, a refresh family, or one access token; with --portfolio, take"
        " a client's or a user's grant of that portfolio back (its live tokens are revoked)",
    )
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", help="username")
    who.add_argument("--client", help="client id (with --portfolio)")
    who.add_argument("--family", type=uuid.UUID)
    who.add_argument("--jti")
    p.add_argument("--portfolio", help="revoke this grant (a portfolio id, or '*')")
    key_help = "print a new key for ALLUSE_ENCRYPTION_KEYS (or ALLUSE_AUDIT_KEYS)"
    p = sub.add_parser("gen-key", help=key_help, description=key_help)
    p.set_defaults(command=None, local=gen_key)
    keys_help = (
        "print a new signing key per service (ALLUSE_<SERVICE>_SIGNING_KEY, given to"
        " each service as ALLUSE_SIGNING_KEY) and ALLUSE_SERVICE_KEYS, the public"
        " halves the security service publishes"
    )
    p = sub.add_parser("gen-service-keys", help=keys_help, description=keys_help)
    p.set_defaults(command=None, local=print_service_keys)
    acl_help = (
        "write the Redis ACL file: one user per service and kind of client, passwords"
        " from ALLUSE_REDIS_PASSWORD_<USER> (stored as SHA-256), the default user off"
    )
    p = sub.add_parser("redis-acl", help=acl_help, description=acl_help)
    p.add_argument("--out", type=Path, help="file to write (default: standard output)")
    p.add_argument(
        "--prefix",
        default=os.environ.get("ALLUSE_STREAM_PREFIX", ""),
        help="the deployment's stream prefix (default: $ALLUSE_STREAM_PREFIX)",
    )
    p.set_defaults(command=None, local=write_acl)
    return parser


def print_service_keys(_: argparse.Namespace) -> int:
    env = identity_env(new_identities())
    print("# .env lines: each service gets only its own key, as ALLUSE_SIGNING_KEY")
    for service, values in env.items():
        print(f"ALLUSE_{service.upper()}_SIGNING_KEY={values['ALLUSE_SIGNING_KEY']}")
    print(f"ALLUSE_SERVICE_KEYS={env[SECURITY]['ALLUSE_SERVICE_KEYS']}")
    return console.OK


def gen_key(_: argparse.Namespace) -> int:
    print(crypto.gen_key())
    return console.OK


def write_acl(args: argparse.Namespace) -> int:
    try:
        kept = args.out.read_text() if args.out is not None and args.out.exists() else ""
        # The machine clients' users `create-client` added to the file are kept.
        text = redis_acl.acl_file(os.environ, args.prefix, redis_acl.client_lines(kept))
    except KeyError as missing:
        print(
            f"error: set {missing.args[0]} (16+ characters, e.g. `openssl rand -hex 24`)",
            file=sys.stderr,
        )
        return console.USAGE
    if args.out is None:
        print(text, end="")
    else:
        args.out.write_text(text)
    return console.OK


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.command is None:  # needs no database
        return int(args.local(args))
    return asyncio.run(console.run(args.command, args))
