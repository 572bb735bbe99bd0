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
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from cryptography.fernet import Fernet

from shared.infra import embedded

VAR = Path("var")
SERVICES = {"security": 8081, "account": 8082, "integration": 8083}


def say(message: str) -> None:
    print(f"\033[1m==> {message}\033[0m", flush=True)


def encryption_keys() -> str:
    """ALLUSE_ENCRYPTION_KEYS, or this machine's local key file, made once and kept 0600."""
    if keys := os.environ.get("ALLUSE_ENCRYPTION_KEYS"):
        return keys
    path = VAR / "encryption.keys"
    if not path.exists():
        path.write_text(Fernet.generate_key().decode())
        path.chmod(0o600)
        say(f"made a local encryption key in {path} (set ALLUSE_ENCRYPTION_KEYS to use your own)")
    return path.read_text().strip()


@contextlib.contextmanager
def servers() -> Iterator[tuple[str, str]]:
    with contextlib.ExitStack() as stack:
        redis_url = os.environ.get("REDIS_URL")
        database_url = os.environ.get("DATABASE_URL")
        if not redis_url:
            say("no REDIS_URL: starting an embedded Redis (data in var/redis)")
            redis_url = stack.enter_context(embedded.embedded_redis(VAR / "redis"))
        if not database_url:
            say("no DATABASE_URL: starting an embedded PostgreSQL (data in var/postgres)")
            VAR.chmod(0o755)  # the embedded server runs as its own user
            database_url = stack.enter_context(embedded.embedded_postgres(VAR / "postgres"))
        yield redis_url, database_url


@contextlib.contextmanager
def services(env: dict[str, str]) -> Iterator[None]:
    procs: dict[str, subprocess.Popen[bytes]] = {}
    logs = VAR / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    try:
        for port in SERVICES.values():
            ensure_free(port)
        for name, port in SERVICES.items():
            log = (logs / f"{name}.log").open("ab")
            procs[name] = subprocess.Popen(
                [sys.executable, "-m", f"services.{name}"],
                env={**env, "ALLUSE_HTTP_PORT": str(port)},
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


def alluse(env: dict[str, str], *args: str, check: bool = True) -> str:
    """Run one `alluse` CLI command as an operator would, echoing it and its output."""
    print(f"$ alluse {' '.join(args)}", flush=True)
    done = subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    print(done.stdout, end="")
    print(done.stderr, end="", file=sys.stderr)
    if check and done.returncode != 0:
        raise SystemExit(f"`alluse {args[0]}` failed with exit code {done.returncode}")
    return done.stdout


def demo(env: dict[str, str], weeks: int, rate: float) -> None:
    client_id = f"demo-operator-{secrets.token_hex(3)}"
    say(
        f"creating a machine client '{client_id}' with role operator (its secret stays in var/, mode 0600)"
    )
    created = json.loads(
        alluse(
            env,
            "--json",
            "security",
            "create-client",
            "--client-id",
            client_id,
            "--role",
            "operator",
        )
    )
    secret_file = VAR / "demo-client.secret"
    secret_file.write_text(created["client_secret"])
    secret_file.chmod(0o600)
    env.update(ALLUSE_CLIENT_ID=client_id, ALLUSE_CLIENT_SECRET_FILE=str(secret_file))

    say("initializing a $250,000 system with the moderate template")
    accounts = json.loads(
        alluse(env, "--json", "init", "--capital", "250000.00", "--template", "moderate")
    )
    by_type = {a["type"]: a["id"] for a in accounts["accounts"]}
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
        alluse(
            env, "simulate", "--weeks", str(weeks), "--rate", str(rate), "--accounts", *accounts_arg
        )
        alluse(env, "show", by_type["generation"])
        alluse(env, "summary")
        alluse(env, "integrity")
        say("demo done; the services keep running. Ctrl-C stops everything.")
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
                "ALLUSE_ENCRYPTION_KEYS": encryption_keys(),
                "ALLUSE_JWKS_URL": f"http://127.0.0.1:{SERVICES['security']}/.well-known/jwks.json",
                "ALLUSE_TOKEN_URL": f"http://127.0.0.1:{SERVICES['security']}/oauth/token",
            }  # fmt: skip
            with services(env):
                if args.no_demo:
                    say("services running; Ctrl-C stops everything")
                    while True:
                        time.sleep(3600)
                demo(env, args.weeks, args.rate)
    except KeyboardInterrupt:
        say("stopping")
    return 0


if __name__ == "__main__":
    sys.exit(main())
