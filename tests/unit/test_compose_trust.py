"""docker-compose.yml as deployed: Redis behind the generated ACL, each service its own user."""

from pathlib import Path
from typing import Any

import yaml

from shared.contracts.streams import ACL_ADMIN, ACL_USERS

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"


def services() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE.read_text())["services"])


def test_redis_runs_the_generated_acl_file_once_it_is_written() -> None:
    s = services()
    assert "--aclfile" in s["redis"]["command"]
    assert s["redis"]["depends_on"]["redis-acl"]["condition"] == "service_completed_successfully"
    assert s["redis-acl"]["command"][-4:] == ["admin", "redis-acl", "--out", "/acl/users.acl"]
    needed = {f"ALLUSE_REDIS_PASSWORD_{u.upper()}" for u in (*ACL_USERS, ACL_ADMIN)}
    assert needed == set(s["redis-acl"]["environment"]) - {"ALLUSE_STREAM_PREFIX"}


def test_no_static_engine_user_is_left() -> None:
    """Lanes (docs/lanes.md): each machine client has its own Redis user `client-<lane>`; the
    shared `engine` user and its password are gone from the deployment."""
    text = COMPOSE.read_text()
    assert "ENGINE" not in text and "redis://engine:" not in text


def test_lanes_are_set_explicitly_on_every_service() -> None:
    s = services()
    for name in ("account", "integration", "security", "console", "security-admin"):
        assert s[name]["environment"]["ALLUSE_LANES"] == "${ALLUSE_LANES:-required}", name


def test_only_the_one_off_admin_container_holds_the_acl_admin_and_writes_the_acl_file() -> None:
    """create-client provisions `client-<lane>` on the running Redis as the generated ACL admin
    (its own password variable, never the default user) and keeps its line in the file Redis
    loads at start; the long-running services hold neither."""
    s = services()
    admin = s["security-admin"]
    assert admin["profiles"] == ["admin"] and admin["restart"] == "no"
    env = admin["environment"]
    assert env["ALLUSE_REDIS_ADMIN_URL"].startswith(
        f"redis://{ACL_ADMIN}:${{ALLUSE_REDIS_PASSWORD_{ACL_ADMIN.upper()}:?"
    )
    out = s["redis-acl"]["command"][-1]
    assert env["ALLUSE_REDIS_ACL_FILE"] == out
    volume = out.rsplit("/", 1)[0]
    assert f"redis-acl:{volume}" in admin["volumes"]
    assert f"redis-acl:{volume}:ro" in s["redis"]["volumes"]
    assert "--aclfile" in s["redis"]["command"] and out in s["redis"]["command"]
    for name, svc in s.items():
        if name != "security-admin":
            assert "ALLUSE_REDIS_ADMIN_URL" not in svc.get("environment", {}), name
            assert "ALLUSE_REDIS_ACL_FILE" not in svc.get("environment", {}), name
    # Everything else as the security service: the same database role, keys and Redis user.
    security = s["security"]["environment"]
    assert {k: v for k, v in env.items() if k in security} == security


def test_every_service_connects_to_redis_as_its_own_user_with_a_password_from_the_env() -> None:
    s = services()
    for name in ("account", "integration", "security", "console"):
        url = s[name]["environment"]["REDIS_URL"]
        assert url.startswith(f"redis://{name}:${{ALLUSE_REDIS_PASSWORD_{name.upper()}:?")
        assert name in ACL_USERS


def test_every_service_connects_to_postgres_as_its_own_role_never_the_superuser() -> None:
    s = services()
    users = {
        name: s[name]["environment"]["DATABASE_URL"].split("//")[1].split(":")[0]
        for name in ("account", "integration", "security", "security-migrate")
    }
    assert users == {
        "account": "account",
        "integration": "integration",
        "security": "security",
        "security-migrate": "security_owner",
    }
    assert s["postgres"]["environment"]["POSTGRES_USER"] not in users.values()
    assert s["security-migrate"]["environment"]["ALLUSE_DATABASE_RUNTIME_ROLE"] == "security"
    assert s["security"]["depends_on"]["security-migrate"]["condition"] == (
        "service_completed_successfully"
    )
    init = "./deploy/postgres/init-roles.sh:/docker-entrypoint-initdb.d/10-roles.sh:ro"
    assert init in s["postgres"]["volumes"]


def test_host_ports_are_set_from_the_environment_with_defaults() -> None:
    """An override file's `ports:` is added to the base file's, never a replacement: the only
    way to move or open a port is a variable (docs/operators/deploy.md)."""
    s = services()
    assert s["security"]["ports"] == [
        "${ALLUSE_SECURITY_BIND:-127.0.0.1}:${ALLUSE_SECURITY_PORT:-8081}:8081"
    ]
    assert s["console"]["ports"] == [
        "${ALLUSE_CONSOLE_BIND:-127.0.0.1}:${ALLUSE_CONSOLE_PORT:-8084}:8084"
    ]
    published = [
        p
        for svc in s.values()
        if "observability" not in svc.get("profiles", [])
        for p in svc.get("ports", [])
    ]
    assert all("${ALLUSE_" in p for p in published)


def test_redis_and_postgres_come_back_after_a_crash_like_the_services() -> None:
    s = services()
    for name in ("redis", "postgres", "security", "account", "integration", "console"):
        assert s[name]["restart"] == "unless-stopped", name
    for one_shot in ("redis-acl", "security-migrate", "security-admin"):
        assert s[one_shot]["restart"] == "no"


def test_secrets_stay_out_of_git_and_out_of_the_build_context() -> None:
    root = COMPOSE.parent
    ignored = (root / ".gitignore").read_text().splitlines()
    assert ".env" in ignored
    context = {line.strip() for line in (root / ".dockerignore").read_text().splitlines()}
    assert {".git", ".env", ".venv", "var"} <= context


def test_healthchecks_survive_podmans_docker_api() -> None:
    """podman's Docker-compatible API splits each CMD healthcheck argument at its spaces (the
    platform's checks never passed under podman with Docker Compose): no argument has one."""
    for name, svc in services().items():
        test = svc.get("healthcheck", {}).get("test", [])
        if test and test[0] == "CMD":
            assert not any(" " in arg for arg in test), name
