"""docker-compose.yml as deployed: Redis behind the generated ACL, each service its own user."""

from pathlib import Path
from typing import Any

import yaml

from shared.contracts.streams import ACL_USERS

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"


def services() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE.read_text())["services"])


def test_redis_runs_the_generated_acl_file_once_it_is_written() -> None:
    s = services()
    assert "--aclfile" in s["redis"]["command"]
    assert s["redis"]["depends_on"]["redis-acl"]["condition"] == "service_completed_successfully"
    assert s["redis-acl"]["command"][-4:] == ["admin", "redis-acl", "--out", "/acl/users.acl"]
    needed = {f"ALLUSE_REDIS_PASSWORD_{u.upper()}" for u in ACL_USERS}
    assert needed <= set(s["redis-acl"]["environment"])


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
