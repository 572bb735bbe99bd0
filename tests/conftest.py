"""Real Redis and PostgreSQL for every test run, with a fresh database and stream prefix per run.

Servers, in order: ALLUSE_TEST_REDIS_URL / ALLUSE_TEST_DATABASE_URL when set; containers from
testcontainers when a Docker daemon answers; else the embedded servers from pip packages.
"""

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from redis.asyncio import Redis

from shared.infra.runtime.settings import Settings
from tests.support.tokens import Signer

RUN = uuid.uuid4().hex[:10]
# Most tests write the shared streams as a single trusted writer would on a Redis without the
# ACL file; the services (in-process and started as processes) take that when lanes are open.
# Tests of lanes set `lanes="required"` themselves (tests/integration/test_lanes.py).
os.environ.setdefault("ALLUSE_LANES", "open")


def _docker_answers() -> bool:
    with contextlib.suppress(Exception):
        import docker  # installed with testcontainers

        return bool(docker.from_env(timeout=2).ping())
    return False


@contextlib.contextmanager
def _servers(tmp: Path) -> Iterator[tuple[str, str]]:
    redis_url = os.environ.get("ALLUSE_TEST_REDIS_URL")
    pg_url = os.environ.get("ALLUSE_TEST_DATABASE_URL")
    with contextlib.ExitStack() as stack:
        if (not redis_url or not pg_url) and _docker_answers():
            from testcontainers.postgres import PostgresContainer
            from testcontainers.redis import RedisContainer

            if not redis_url:
                rc = stack.enter_context(RedisContainer("redis:7-alpine"))
                redis_url = f"redis://{rc.get_container_host_ip()}:{rc.get_exposed_port(6379)}/0"
            if not pg_url:
                pc = stack.enter_context(PostgresContainer("postgres:16-alpine", driver=None))
                pg_url = pc.get_connection_url()
        if not redis_url or not pg_url:
            from shared.tooling import embedded

            if not redis_url:
                redis_url = stack.enter_context(embedded.embedded_redis(tmp / "redis"))
            if not pg_url:
                pg_url = stack.enter_context(embedded.embedded_postgres(tmp / "postgres"))
        yield redis_url, pg_url


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    tmp = tmp_path_factory.mktemp("servers")
    tmp.chmod(0o755)  # the embedded PostgreSQL runs as its own user
    with _servers(tmp) as urls:
        yield urls


@contextlib.asynccontextmanager
async def fresh_database(admin_url: str, name: str) -> AsyncIterator[str]:
    """A new database on the server of `admin_url`, dropped on exit."""
    admin = await asyncpg.connect(admin_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    base, _, query = admin_url.partition("?")
    yield f"{base.rsplit('/', 1)[0]}/{name}" + (f"?{query}" if query else "")
    admin = await asyncpg.connect(admin_url)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


@pytest.fixture(scope="session")
async def database_url(servers: tuple[str, str]) -> AsyncIterator[str]:
    """A database of this run's own, dropped at the end."""
    async with fresh_database(servers[1], f"alluse_test_{RUN}") as url:
        yield url


@pytest.fixture
async def own_database(servers: tuple[str, str]) -> AsyncIterator[str]:
    """A database for one test alone (whole-platform tests whose keys must not meet others')."""
    async with fresh_database(servers[1], f"alluse_test_{RUN}_{uuid.uuid4().hex[:6]}") as url:
        yield url


@pytest.fixture(scope="session")
def signer(tmp_path_factory: pytest.TempPathFactory) -> Signer:
    return Signer(tmp_path_factory.mktemp("jwks") / "jwks.json")


@pytest.fixture
def settings(servers: tuple[str, str], database_url: str, signer: Signer) -> Settings:
    """Settings for one test: its own stream prefix, so tests never see each other's entries."""
    return Settings(
        redis_url=servers[0],
        database_url=database_url,
        stream_prefix=f"t{RUN}.{uuid.uuid4().hex[:8]}.",
        jwks_url=signer.jwks_url,
        signing_key=signer.seed("account"),  # services other than the account: `as_service`
        reclaim_idle_ms=500,
        max_deliveries=3,
        block_ms=20,
    )


def as_service(settings: Settings, signer: Signer, service: str) -> Settings:
    """The same settings with `service`'s own signing key."""
    return settings.model_copy(update={"signing_key": signer.seed(service)})


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[Redis]:
    client = Redis.from_url(settings.redis_url)
    yield client
    keys = [k async for k in client.scan_iter(match=f"{settings.stream_prefix}*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()
