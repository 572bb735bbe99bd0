"""`make run`: the whole platform on one machine, with a live demonstration.

Uses REDIS_URL / DATABASE_URL when set; otherwise starts an embedded Redis and PostgreSQL
(data under ./var/). Starts the security, account and integration services as separate
processes, then shows them at work: a system initialized, a deposit, a refused Com-Acc
withdrawal, and simulated WS2/WS4 weeks whose lifecycle events print as they happen.
Ctrl-C stops everything.
"""

import argparse
import contextlib
import json
import os
import re
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path

from cryptography.fernet import Fernet

from shared.infra import embedded
from shared.infra.signing import identity_env, new_identities

VAR = Path("var")
SERVICES = {"security": 8081, "account": 8082, "integration": 8083}
REDIS_PORT = 6380  # the embedded Redis's, when free: a second terminal finds it where it was
ENV_FILE = VAR / "alluse.env"
SECRET_FILE = VAR / "demo-client.secret"
ENGINE_SECRET_FILE = VAR / "demo-engine.secret"  # the simulators' trading_engine client


def say(message: str) -> None:
    print(f"\033[1m==> {message}\033[0m", flush=True)


# Keys that live outside the database: made once per machine when the environment has none.
KEY_FILES = {"ALLUSE_ENCRYPTION_KEYS": VAR / "encryption.keys", "ALLUSE_AUDIT_KEYS": VAR / "audit.keys"}  # fmt: skip


def local_key(name: str) -> str:
    """$name, or this machine's local key file for it, made once and kept 0600."""
    if keys := os.environ.get(name):
        return keys
    path = KEY_FILES[name]
    if not path.exists():
        path.write_text(Fernet.generate_key().decode())
        path.chmod(0o600)
        say(f"made a local key in {path} (set {name} to use your own)")
    return path.read_text().strip()


def write_env(env: Mapping[str, str], path: Path = ENV_FILE) -> None:
    """What a second terminal needs to use `alluse` here, as a file to `source` (mode 0600).

    Secrets stay in their own files: the client secret and the local keys are read from var/
    when sourced; keys passed in the environment are never written down.
    """
    lines = [
        "# Written by `make run` for a second terminal: source var/alluse.env",
        f'export PATH={shlex.quote(str(Path(sys.executable).parent.absolute()))}:"$PATH"',
    ]
    names = ("REDIS_URL", "DATABASE_URL", "ALLUSE_STREAM_PREFIX", "ALLUSE_TOKEN_URL",
             "ALLUSE_CLIENT_ID", "ALLUSE_CLIENT_SECRET_FILE")  # fmt: skip
    lines += [f"export {name}={shlex.quote(env[name])}" for name in names if env.get(name)]
    for name, key_file in KEY_FILES.items():  # admin commands need the local keys
        if name not in os.environ:
            lines.append(f'export {name}="$(cat {shlex.quote(str(key_file.absolute()))})"')
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(lines) + "\n")


def second_terminal_hint() -> None:
    say(f"in a second terminal: source {ENV_FILE}")
    print("    alluse summary\n    alluse tail --stream lifecycle", flush=True)


def identities() -> dict[str, dict[str, str]]:
    """Each service's signing key (made once in var/service-keys.json, mode 0600) and, for the
    security service, the public halves it publishes: per-service environment variables."""
    path = VAR / "service-keys.json"
    if not path.exists():
        path.write_text(json.dumps(new_identities()))
        path.chmod(0o600)
        say(f"made a signing key per service in {path} (see README, 'Who signs what')")
    return identity_env(json.loads(path.read_text()))


@contextlib.contextmanager
def servers() -> Iterator[tuple[str, str]]:
    with contextlib.ExitStack() as stack:
        redis_url = os.environ.get("REDIS_URL")
        database_url = os.environ.get("DATABASE_URL")
        if not redis_url:
            say("no REDIS_URL: starting an embedded Redis (data in var/redis)")
            redis_url = stack.enter_context(embedded.embedded_redis(VAR / "redis", REDIS_PORT))
        if not database_url:
            say("no DATABASE_URL: starting an embedded PostgreSQL (data in var/postgres)")
            VAR.chmod(0o755)  # the embedded server runs as its own user
            database_url = stack.enter_context(embedded.embedded_postgres(VAR / "postgres"))
        yield redis_url, database_url


@contextlib.contextmanager
def services(env: dict[str, str]) -> Iterator[None]:
    procs: dict[str, subprocess.Popen[bytes]] = {}
    own = identities()
    logs = VAR / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    try:
        for port in SERVICES.values():
            ensure_free(port)
        for name, port in SERVICES.items():
            log = (logs / f"{name}.log").open("ab")
            procs[name] = subprocess.Popen(
                [sys.executable, "-m", f"services.{name}"],
                env={**env, **own[name], "ALLUSE_HTTP_PORT": str(port)},
                stdout=log,
                stderr=log,
            )
            wait_ready(name, port, procs[name])
            say(
                f"{name} service up (pid {procs[name].pid}, http://127.0.0.1:{port}/readyz, log {log.name})"
            )
        yield
    finally:
        for proc in procs.values():
            proc.terminate()
        for name, proc in procs.items():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
            say(f"{name} service stopped")


def ensure_free(port: int) -> None:
    """Refuse to start next to another copy of the platform: its /readyz would answer for ours."""
    with socket.socket() as s:
        if s.connect_ex(("127.0.0.1", port)) == 0:
            raise SystemExit(
                f"port {port} is in use: is the platform already running (another `make run`)?"
            )


def wait_ready(name: str, port: int, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(
                f"the {name} service exited (code {proc.returncode}); see var/logs/{name}.log"
            )
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r,
        ):
            if r.status == 200:
                return
        time.sleep(0.2)
    raise SystemExit(
        f"the {name} service did not become ready in {timeout:.0f}s; see var/logs/{name}.log"
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


def demo_client(env: dict[str, str]) -> None:
    """A machine client for the demo and the second terminal; its secret only ever in var/."""
    client_id = f"demo-operator-{secrets.token_hex(3)}"
    say(
        f"creating a machine client '{client_id}' with role operator (secret in {SECRET_FILE}, mode 0600)"
    )
    args = ("security", "create-client", "--client-id", client_id, "--role", "operator")
    print(f"$ alluse {' '.join(args)}", flush=True)
    created = json.loads(alluse(env, "--json", *args, echo=False))
    SECRET_FILE.unlink(missing_ok=True)
    fd = os.open(SECRET_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(created["client_secret"])
    env.update(ALLUSE_CLIENT_ID=client_id, ALLUSE_CLIENT_SECRET_FILE=str(SECRET_FILE.absolute()))
    write_env(env)
    engine_id = f"demo-engine-{secrets.token_hex(3)}"
    say(f"creating a machine client '{engine_id}' with role trading_engine for the simulators")
    args = ("security", "create-client", "--client-id", engine_id, "--role", "trading_engine")
    print(f"$ alluse {' '.join(args)}", flush=True)
    engine = json.loads(alluse(env, "--json", *args, echo=False))
    ENGINE_SECRET_FILE.unlink(missing_ok=True)
    fd = os.open(ENGINE_SECRET_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(engine["client_secret"])
    env.update(ALLUSE_ENGINE_CLIENT_ID=engine_id)


def demo(env: dict[str, str], weeks: int, rate: float) -> None:
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
    engine_env = {**env, "ALLUSE_CLIENT_ID": env["ALLUSE_ENGINE_CLIENT_ID"],
                  "ALLUSE_CLIENT_SECRET_FILE": str(ENGINE_SECRET_FILE.absolute())}  # fmt: skip
    try:
        accounts_arg = [f"{i}:{t}" for t, i in by_type.items()]
        alluse(
            engine_env,
            "simulate", "--weeks", str(weeks), "--rate", str(rate), "--accounts", *accounts_arg,
        )  # fmt: skip
        alluse(env, "show", by_type["generation"])
        alluse(env, "summary")
        alluse(env, "integrity")
        say("demo done; the services keep running. Ctrl-C stops everything.")
        second_terminal_hint()
        tail.wait()
    finally:
        tail.terminate()


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
        with servers() as (redis_url, database_url):
            env = {
                **os.environ, "REDIS_URL": redis_url, "DATABASE_URL": database_url,
                **{name: local_key(name) for name in KEY_FILES},
                "ALLUSE_JWKS_URL": f"http://127.0.0.1:{SERVICES['security']}/.well-known/jwks.json",
                "ALLUSE_TOKEN_URL": f"http://127.0.0.1:{SERVICES['security']}/oauth/token",
            }  # fmt: skip
            with services(env):
                demo_client(env)
                if args.no_demo:
                    say("services running; Ctrl-C stops everything")
                    second_terminal_hint()
                    while True:
                        time.sleep(3600)
                demo(env, args.weeks, args.rate)
    except KeyboardInterrupt:
        say("stopping")
    finally:
        ENV_FILE.unlink(missing_ok=True)  # it would point a second terminal at stopped servers
    return 0


if __name__ == "__main__":
    sys.exit(main())
