"""`make run`: the whole platform on one machine, with a live demonstration.

Uses REDIS_URL / DATABASE_URL when set; otherwise starts an embedded Redis and PostgreSQL
(data under ./var/). The embedded Redis runs the generated ACL file, as production does: the
default user off, each service its own Redis user, each demo client a lane and a Redis user of
its own (passwords generated into var/, mode 0600). A REDIS_URL without an ACL serves one
trusted writer only, and says so at start. Starts the security, account and integration
services and the web console as processes, then shows them at work: a system initialized, a
deposit, a refused Com-Acc withdrawal, and simulated WS2/WS4 weeks whose lifecycle events print
as they happen. Ctrl-C stops everything.
"""

import argparse
import contextlib
import json
import os
import re
import secrets
import shlex
import signal
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator, Mapping
from pathlib import Path

from shared.tooling import embedded
from shared.tooling.launch import (
    ADMIN_USER,
    KEY_FILES,
    SERVICES,
    VAR,
    RedisAccess,
    acl_redis,
    create_client,
    password_file,
    platform_env,
    redis_password_file,
    say,
    services,
    unrestricted,
    warn,
    write_secret,
)

DEMO_WEEKS = "P-EW,P-AOL,C-PNO,C-PNO"  # the demo's weeks: puts assigned in the second, shares kept
# The web console runs beside the three services: a client of theirs, with no identity.
PORTS = {**SERVICES, "console": 8084}
REDIS_PORT = 6380  # the embedded Redis's, when free: a second terminal finds it where it was
ENV_FILE = VAR / "alluse.env"
ADMIN_ENV_FILE = VAR / "alluse-admin.env"  # with the ACL: the security administration's
SECRET_FILE = VAR / "demo-client.secret"
ENGINE_SECRET_FILE = VAR / "demo-engine.secret"  # the simulators' trading_engine client


def write_env(
    env: Mapping[str, str], path: Path = ENV_FILE, redis_password_file: Path | None = None
) -> None:
    """What a second terminal needs to use `alluse` here, as a file to `source` (mode 0600).

    Secrets stay in their own files: the client secret, its Redis password
    (`redis_password_file`, put into REDIS_URL when sourced) and the local keys are read from
    var/ when sourced; keys passed in the environment are never written down.
    """
    lines = [
        "# Written by `make run` for a second terminal: source var/alluse.env",
        f'export PATH={shlex.quote(str(Path(sys.executable).parent.absolute()))}:"$PATH"',
    ]
    if redis_password_file is not None and env.get("REDIS_URL"):
        parts = urllib.parse.urlsplit(env["REDIS_URL"])
        user, host = parts.username or "", parts.netloc.rsplit("@", 1)[-1]
        rest = urllib.parse.urlunsplit(parts._replace(scheme="", netloc=host))[len("//") :]
        password = f"$(cat {shlex.quote(str(redis_password_file.absolute()))})"
        lines.append(f'export REDIS_URL="{parts.scheme}://{user}:{password}@{rest}"')
    names = (
        *(() if redis_password_file is not None else ("REDIS_URL",)),
        "DATABASE_URL",
        "ALLUSE_STREAM_PREFIX",
        "ALLUSE_TOKEN_URL",
        "ALLUSE_JWKS_URL",
        "ALLUSE_CLIENT_ID",
        "ALLUSE_CLIENT_SECRET_FILE",
    )
    lines += [f"export {name}={shlex.quote(env[name])}" for name in names if env.get(name)]
    for name, key_file in KEY_FILES.items():  # admin commands need the local keys
        if name not in os.environ:
            lines.append(f'export {name}="$(cat {shlex.quote(str(key_file.absolute()))})"')
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(lines) + "\n")


def write_admin_env(redis_access: RedisAccess, path: Path = ADMIN_ENV_FILE) -> None:
    """The security administration's settings for a second terminal (`alluse security
    create-client` and the like, after var/alluse.env), mode 0600: the security service's
    Redis user and the ACL administrator, their passwords read from var/ when sourced."""
    names = {"REDIS_URL": "security", "ALLUSE_REDIS_ADMIN_URL": ADMIN_USER}
    lines = ["# Written by `make run`: source var/alluse.env, then this file, to administer"]
    for name, user in names.items():
        url = redis_access.as_user(user, "PASSWORD")
        password = f"$(cat {shlex.quote(str(password_file(user).absolute()))})"
        lines.append(f'export {name}="{url.replace(":PASSWORD@", f":{password}@", 1)}"')
    lines.append(f"export ALLUSE_REDIS_ACL_FILE={shlex.quote(redis_access.acl_file)}")
    write_secret(path, "\n".join(lines) + "\n")


def second_terminal_hint() -> None:
    say(f"in a second terminal: source {ENV_FILE}")
    print("    alluse summary\n    alluse tail --stream lifecycle", flush=True)
    if ADMIN_ENV_FILE.exists():
        print(f"    source {ADMIN_ENV_FILE}  # then: alluse security create-client ...", flush=True)


@contextlib.contextmanager
def servers() -> Iterator[tuple[RedisAccess, str]]:
    with contextlib.ExitStack() as stack:
        redis_url = os.environ.get("REDIS_URL")
        database_url = os.environ.get("DATABASE_URL")
        if redis_url:
            redis_access = RedisAccess(redis_url)
            given_redis(redis_url)
        else:
            say("no REDIS_URL: starting an embedded Redis with the ACL file (data in var/redis)")
            prefix = os.environ.get("ALLUSE_STREAM_PREFIX", "")
            redis_access = stack.enter_context(acl_redis(VAR / "redis", REDIS_PORT, prefix=prefix))
        if not database_url:
            say("no DATABASE_URL: starting an embedded PostgreSQL (data in var/postgres)")
            VAR.chmod(0o755)  # the embedded server runs as its own user
            database_url = stack.enter_context(embedded.embedded_postgres(VAR / "postgres"))
        yield redis_access, database_url


def given_redis(url: str) -> None:
    """A REDIS_URL of the user's serves every process and client as one Redis user: fine for a
    single trusted writer, and said at start when nothing but the platform's own checks
    keeps one writer off another's streams."""
    where = urllib.parse.urlsplit(url).netloc.rsplit("@", 1)[-1]
    if unrestricted(url):
        warn(
            f"REDIS_URL ({where}) runs without the ACL file: every service and client shares"
            " one Redis user that may write any stream, so Redis enforces no lane. Fit only for"
            " a single trusted writer; unset REDIS_URL for the embedded Redis with the ACL"
            " (docs/operators/running.md)"
        )
    else:
        warn(
            f"REDIS_URL ({where}): every service and client connects as this one Redis user,"
            " not as its own; it needs every service's rights (docs/operators/running.md)"
        )


def alluse(env: dict[str, str], *args: str, check: bool = True, echo: bool = True) -> str:
    """Run one `alluse` CLI command as an operator would, echoing it and its output."""
    if echo:
        print(f"$ alluse {' '.join(args)}", flush=True)
    done = subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if echo:
        print(done.stdout, end="")
    if echo or done.returncode != 0:
        print(done.stderr, end="", file=sys.stderr)
    if check and done.returncode != 0:
        raise SystemExit(f"`alluse {args[0]}` failed with exit code {done.returncode}")
    return done.stdout


def demo_client(env: dict[str, str], redis_access: RedisAccess) -> dict[str, str]:
    """A machine client for the demo and the second terminal, and one for the simulators: each
    its lane and (on the ACL Redis) its Redis user; secrets and passwords only ever in var/.
    Returns the simulators' settings."""
    admin = {**env, **redis_access.admin_env()}
    client_id = f"demo-operator-{secrets.token_hex(3)}"
    own = "its lane and Redis user" if redis_access.users else "its lane"
    say(
        f"creating a machine client '{client_id}' with role operator, {own}"
        f" (secret in {SECRET_FILE}, mode 0600)"
    )
    print(f"$ alluse security create-client --client-id {client_id} --role operator", flush=True)
    env.update(create_client(admin, client_id, "operator", SECRET_FILE, redis_access=redis_access))
    write_env(
        env, redis_password_file=redis_password_file(SECRET_FILE) if redis_access.users else None
    )
    if redis_access.users:
        write_admin_env(redis_access)
    engine_id = f"demo-engine-{secrets.token_hex(3)}"
    say(f"creating a machine client '{engine_id}' with role trading_engine for the simulators")
    print(
        f"$ alluse security create-client --client-id {engine_id} --role trading_engine"
        " --portfolio '*'",
        flush=True,
    )
    engine = create_client(
        admin, engine_id, "trading_engine", ENGINE_SECRET_FILE, redis_access=redis_access
    )
    return {**env, **engine}


def demo(env: dict[str, str], engine_env: dict[str, str], weeks: int, rate: float) -> None:
    say("initializing a $250,000 system with the moderate template")
    shown = alluse(env, "init", "--capital", "250000.00", "--template", "moderate")
    portfolio = re.search(r"portfolio ([0-9a-f-]{36})", shown)
    if portfolio is None:
        raise SystemExit("`alluse init` named no portfolio")
    listed = alluse(env, "--json", "list", "--portfolio", portfolio[1], echo=False)
    by_type = {a["type"]: a["id"] for a in json.loads(listed)["accounts"]}
    alluse(env, "init", "--capital", "100000.00", "--template", "aggressive", "--name", "second")
    say("depositing $10,000.00 into the Generation account")
    alluse(env, "deposit", by_type["generation"], "10000.00", "--description", "demo top-up")
    say("withdrawing from the Compounding account: refused by rule, Com-Acc never pays out")
    alluse(env, "withdraw", by_type["compounding"], "1000.00", check=False)
    say(f"simulating {weeks} weeks of WS2/WS4 events; lifecycle events follow live")
    tail = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "tail", "--stream", "lifecycle"], env=env
    )
    try:
        accounts_arg = [f"{i}:{t}" for t, i in by_type.items()]
        # A calm week, then a fall that assigns the puts (their shares are held, not lost),
        # then covered calls on the shares.
        alluse(
            engine_env,
            "simulate",
            "--weeks",
            str(weeks),
            "--rate",
            str(rate),
            "--week-types",
            DEMO_WEEKS,
            "--accounts",
            *accounts_arg,
        )
        say("each account's positions at their marks: cash + positions = value, no cash below zero")
        for account in by_type.values():
            alluse(env, "positions", account)
        alluse(env, "show", by_type["generation"])
        alluse(env, "summary")
        alluse(env, "integrity")
        say("demo done; the services keep running. Ctrl-C stops everything.")
        second_terminal_hint()
        tail.wait()
    finally:
        tail.terminate()


def console_user(env: dict[str, str]) -> None:
    """An operator for the web console, its generated password kept in var/ (mode 0600).
    `env`: the security administration's settings (RedisAccess.admin_env)."""
    name, password = f"demo-{secrets.token_hex(3)}", secrets.token_urlsafe(12) + "-Aa1!"
    path = VAR / "console-operator.password"
    path.write_text(password)
    path.chmod(0o600)
    alluse(
        env,
        "security",
        "create-user",
        "--username",
        name,
        "--role",
        "operator",
        "--password-file",
        str(path),
    )
    say(f"web console: http://127.0.0.1:{PORTS['console']} (user '{name}', password in {path})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="make run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--weeks", type=int, default=4, help="simulated weeks in the demo (default 4)"
    )
    parser.add_argument(
        "--rate", type=float, default=20, help="simulated events per second (default 20)"
    )
    parser.add_argument("--no-demo", action="store_true", help="only run the services")
    args = parser.parse_args(argv)
    VAR.mkdir(exist_ok=True)
    # SIGTERM (docker stop, kill) stops everything as Ctrl-C does, never orphaning the services.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        with servers() as (redis_access, database_url):
            env = platform_env(redis_access.url, database_url, security_port=SERVICES["security"])
            env |= {
                "ALLUSE_SECURITY_URL": f"http://127.0.0.1:{SERVICES['security']}",
                "ALLUSE_CONSOLE_SERVICES": ",".join(
                    f"{n}=http://127.0.0.1:{p}" for n, p in SERVICES.items()
                ),
            }
            with services(env, PORTS, redis_access=redis_access):
                engine_env = demo_client(env, redis_access)
                console_user({**env, **redis_access.admin_env()})
                if args.no_demo:
                    say("services running; Ctrl-C stops everything")
                    second_terminal_hint()
                    while True:
                        time.sleep(3600)
                demo(env, engine_env, args.weeks, args.rate)
    except KeyboardInterrupt:
        say("stopping")
    finally:
        ENV_FILE.unlink(missing_ok=True)  # it would point a second terminal at stopped servers
        ADMIN_ENV_FILE.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
