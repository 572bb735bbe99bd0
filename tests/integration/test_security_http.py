"""The security service over real HTTP (uvicorn on a free port), PostgreSQL and Redis."""

import asyncio
import base64
import hashlib
import hmac
import json
import os
import secrets
import socket
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import pytest
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from services.security import app, keys, store
from services.security.admin import Admin
from services.security.failures import Unauthenticated
from services.security.settings import SecuritySettings
from shared.contracts.envelope import CloudEvent, decode
from shared.contracts.streams import AUDIT, AUDIT_HEADS, REVOCATIONS
from shared.contracts.trust import REVOKED
from shared.infra.runtime.service import running
from shared.infra.runtime.settings import Settings
from shared.infra.stream.messaging import Rejected
from shared.infra.trust.audit import audit_event
from shared.infra.trust.auth import Verifier
from shared.infra.trust.keys import KeySet
from shared.infra.trust.revocations import Revocations
from tests.support.streams import ce, entries, xadd
from tests.support.tokens import Signer
from tests.support.waiting import until

# One key per test process (the shared schema's values must stay readable); never in the repo.
KEY = os.environ.setdefault("ALLUSE_TEST_ENCRYPTION_KEY", Fernet.generate_key().decode())
AUDIT_KEY = os.environ.setdefault("ALLUSE_TEST_AUDIT_KEY", Fernet.generate_key().decode())
PASSWORD = "Correct-Horse-9!"
FORM = {"content-type": "application/x-www-form-urlencoded"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def security_settings(settings: Settings, **overrides: Any) -> SecuritySettings:
    port = free_port()
    base = settings.model_dump(exclude={"http_port", "jwks_url"})
    return SecuritySettings(
        **{
            **base,
            "encryption_keys": KEY,
            "audit_keys": AUDIT_KEY,
            "http_port": port,
            "jwks_url": f"http://127.0.0.1:{port}/.well-known/jwks.json",
            **overrides,
        }
    )


@dataclass
class Svc:
    settings: SecuritySettings
    http: httpx.AsyncClient
    admin: Admin
    redis: Redis
    failures: Unauthenticated

    def keys(self) -> KeySet:
        """What another service sees: the JWKS over HTTP."""
        return KeySet.from_url(self.settings.jwks_url)

    def revocations(self) -> Revocations:
        return Revocations(self.redis, self.settings.streams.key(REVOCATIONS), keys=self.keys())

    def verifier(self, revocations: Revocations | None = None) -> Verifier:
        s = self.settings
        return Verifier(
            self.keys(),
            issuer=s.jwt_issuer,
            audience=s.jwt_audience,
            is_revoked=revocations.is_revoked if revocations else lambda _: False,
        )

    async def user(self, role: str = "operator", **kw: Any) -> tuple[str, uuid.UUID]:
        name = f"u-{uuid.uuid4().hex[:10]}"
        uid = await self.admin.create_user(
            app.passwords_from(self.settings),
            username=name,
            password=PASSWORD,
            role=role,
            email=kw.get("email"),
        )
        return name, uid

    async def login(self, username: str, password: str = PASSWORD) -> httpx.Response:
        data = {"grant_type": "password", "username": username, "password": password}
        return await self.http.post("/oauth/token", data=data)

    async def audits(self, action: str) -> int:
        async with self.admin.pool.acquire() as conn:
            return int(
                await conn.fetchval("SELECT count(*) FROM audit_records WHERE action = $1", action)
            )


@pytest.fixture
async def svc(settings: Settings, redis: Redis, signer: Signer) -> AsyncIterator[Svc]:
    sec = security_settings(
        settings, signing_key=signer.seed("security"), service_keys=signer.service_keys()
    )
    service = await app.build(sec)
    async with running(service.rt, service.routes) as server:
        assert server is not None
        # uvicorn exposes a flag, not an event: read it between yields to the loop
        await until(lambda: asyncio.sleep(0, server.started), what="the HTTP server started")
        base = f"http://127.0.0.1:{sec.http_port}"
        async with httpx.AsyncClient(base_url=base) as http:
            admin = Admin(service.rt.pool, sec, app.fernet_from(sec), actor="tests")
            yield Svc(sec, http, admin, redis, service.authority.failures)


async def test_password_grant_issues_eddsa_token_the_shared_verifier_accepts(svc: Svc) -> None:
    name, uid = await svc.user("operator")
    r = await svc.login(name)
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    body = r.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 900 and body["refresh_token"]
    header = jwt.get_unverified_header(body["access_token"])
    assert header["alg"] == "EdDSA" and header["kid"]
    who = await svc.verifier().principal(f"Bearer {body['access_token']}")
    assert (who.subject, who.role) == (str(uid), "operator")
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert set(claims) >= {"iss", "aud", "sub", "role", "exp", "nbf", "iat", "jti"}
    assert await svc.audits("security.login.succeeded") >= 1


async def test_jwks_serves_public_keys_only(svc: Svc) -> None:
    r = await svc.http.get("/.well-known/jwks.json")
    assert r.status_code == 200
    for jwk in r.json()["keys"]:
        assert jwk["kty"] == "OKP" and jwk["crv"] == "Ed25519" and "d" not in jwk


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _forge(header: dict[str, Any], claims: dict[str, Any], sign: Any) -> str:
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    return f"{signing_input}.{_b64(sign(signing_input.encode()))}"


async def _attack(svc: Svc, kind: str) -> str:
    async with svc.admin.pool.acquire() as conn:
        row = await store.active_key(conn)
    assert row is not None
    kid, key = row["kid"], keys.KeyCache(svc.admin.fernet).private(row["kid"], row["private_enc"])
    s, now = svc.settings, int(time.time())
    claims = {
        "iss": s.jwt_issuer,
        "aud": s.jwt_audience,
        "sub": "attacker",
        "role": "admin",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": uuid.uuid4().hex,
    }

    def signed(**changes: Any) -> str:
        return jwt.encode({**claims, **changes}, key, algorithm="EdDSA", headers={"kid": kid})

    if kind == "alg none":
        return _forge({"alg": "none", "kid": kid}, claims, lambda _: b"")
    if kind == "HS256 with the public key":
        jwks = (await svc.http.get("/.well-known/jwks.json")).json()["keys"]
        public = json.dumps(next(k for k in jwks if k["kid"] == kid)).encode()
        return _forge(
            {"alg": "HS256", "kid": kid},
            claims,
            lambda m: hmac.new(public, m, hashlib.sha256).digest(),
        )
    if kind == "expired":
        return signed(iat=now - 2000, nbf=now - 2000, exp=now - 1000)
    if kind == "not yet valid":
        return signed(nbf=now + 1000, exp=now + 2000)
    if kind == "wrong iss":
        return signed(iss="evil")
    if kind == "wrong aud":
        return signed(aud="elsewhere")
    if kind == "missing jti":
        return jwt.encode(
            {k: v for k, v in claims.items() if k != "jti"},
            key,
            algorithm="EdDSA",
            headers={"kid": kid},
        )
    if kind == "unknown kid":
        return jwt.encode(
            claims, Ed25519PrivateKey.generate(), algorithm="EdDSA", headers={"kid": "nope"}
        )
    assert kind == "tampered payload"
    head, _, sig = signed(role="viewer").split(".")
    return f"{head}.{_b64(json.dumps({**claims, 'role': 'admin'}).encode())}.{sig}"


ATTACKS = [
    "alg none",
    "HS256 with the public key",
    "expired",
    "not yet valid",
    "wrong iss",
    "wrong aud",
    "missing jti",
    "unknown kid",
    "tampered payload",
]


@pytest.mark.parametrize("kind", ATTACKS)
async def test_forged_or_invalid_token_is_refused_audited_and_changes_nothing(
    svc: Svc, kind: str
) -> None:
    token = await _attack(svc, kind)
    with pytest.raises(Rejected) as refused:
        await svc.verifier().principal(f"Bearer {token}")
    assert refused.value.code == "unauthorized"
    assert "token" in refused.value.reason
    # The security service's own entry point (RFC 7009 revoke) refuses it too, and audits it.
    async with svc.admin.pool.acquire() as conn:
        revoked = await conn.fetchval("SELECT count(*) FROM revoked_jtis")
    before = await svc.audits("security.revoke.refused")
    r = await svc.http.post("/oauth/revoke", data={"token": token})
    assert r.status_code == 200  # RFC 7009: the same answer for invalid tokens
    assert await svc.audits("security.revoke.refused") == before + 1
    async with svc.admin.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM revoked_jtis") == revoked


async def test_revoked_jti_is_refused_by_every_verifier(svc: Svc) -> None:
    revocations = svc.revocations()
    task = await revocations.start()
    try:
        name, _ = await svc.user()
        token = (await svc.login(name)).json()["access_token"]
        verifier = svc.verifier(revocations)
        await verifier.principal(f"Bearer {token}")
        assert (await svc.http.post("/oauth/revoke", data={"token": token})).status_code == 200

        async def refused() -> bool:
            try:
                await verifier.principal(f"Bearer {token}")
            except Rejected as r:
                return "revoked" in r.reason
            return False

        await until(refused)  # how fast is a figure for a benchmark, not a test assertion
        assert await svc.audits("security.token.revoked") >= 1
    finally:
        task.cancel()


async def test_lockout_answers_like_a_wrong_password_and_keeps_the_users_tokens(svc: Svc) -> None:
    revocations = svc.revocations()
    task = await revocations.start()
    try:
        name, _uid = await svc.user()
        good = (await svc.login(name)).json()
        verifier = svc.verifier(revocations)
        wrong = await svc.login(name, "Wrong-Password-1")
        unknown = await svc.login(f"nobody-{uuid.uuid4().hex[:8]}")
        assert wrong.status_code == unknown.status_code == 400
        assert (
            wrong.json()
            == unknown.json()
            == {
                "error": "invalid_grant",
                "error_description": "invalid username or password",
            }
        )
        for _ in range(4):
            await svc.login(name, "Wrong-Password-1")
        locked = await svc.login(name)  # the right password, but the user is locked now
        assert (locked.status_code, locked.json()) == (400, wrong.json())
        assert await svc.audits("security.user.locked") >= 1
        # Revocations are relayed in commit order: once a later one arrives, a lockout's would
        # have too. The user's live access token and its refresh token still work.
        marker = f"marker-{uuid.uuid4().hex}"
        await svc.admin.revoke(jti=marker)

        async def arrived() -> bool:
            return marker in revocations.jtis

        await until(arrived)
        await verifier.principal(f"Bearer {good['access_token']}")
        r = await svc.http.post(
            "/oauth/token",
            data={"grant_type": "refresh_token", "refresh_token": good["refresh_token"]},
        )
        assert r.status_code == 200, r.text
        # An admin unlocks; then the password works again.
        await svc.admin.set_status(username=name, status="active")
        assert (await svc.login(name)).status_code == 200
    finally:
        task.cancel()


async def test_lock_expires_after_the_configured_time(svc: Svc) -> None:
    name, uid = await svc.user()
    for _ in range(5):
        await svc.login(name, "Wrong-Password-1")
    assert (await svc.login(name)).status_code == 400
    async with svc.admin.pool.acquire() as conn:  # let the lock time pass
        await conn.execute(
            "UPDATE users SET locked_until = now() - interval '1 second' WHERE id = $1", uid
        )
    assert (await svc.login(name)).status_code == 200


async def test_token_of_a_deleted_user_is_refused(svc: Svc) -> None:
    revocations = svc.revocations()
    task = await revocations.start()
    try:
        name, _ = await svc.user()
        good = (await svc.login(name)).json()
        await svc.admin.set_status(username=name, status="deleted")

        async def refused() -> bool:
            return revocations.is_revoked(
                jwt.decode(good["access_token"], options={"verify_signature": False})
            )

        await until(refused)
        r = await svc.login(name)
        assert (
            r.status_code == 400 and r.json()["error_description"] == "invalid username or password"
        )
        assert await svc.audits("security.user.deleted") >= 1
    finally:
        task.cancel()


async def test_refresh_rotates_and_reuse_revokes_the_whole_family(svc: Svc) -> None:
    name, _ = await svc.user()
    first = (await svc.login(name)).json()

    async def refresh(token: str) -> httpx.Response:
        return await svc.http.post(
            "/oauth/token", data={"grant_type": "refresh_token", "refresh_token": token}
        )

    second = (await refresh(first["refresh_token"])).json()
    assert second["refresh_token"] != first["refresh_token"]
    reused = await refresh(first["refresh_token"])  # stolen and replayed
    assert reused.status_code == 400 and reused.json() == {
        "error": "invalid_grant",
        "error_description": "refresh token reused",
    }
    assert (await refresh(second["refresh_token"])).status_code == 400  # the family is gone
    assert await svc.audits("security.refresh.reused") >= 1
    async with svc.admin.pool.acquire() as conn:
        jti = jwt.decode(second["access_token"], options={"verify_signature": False})["jti"]
        assert await conn.fetchval("SELECT count(*) FROM revoked_jtis WHERE jti = $1", jti) == 1


async def test_client_credentials_by_basic_auth_or_body(svc: Svc) -> None:
    cid = f"engine-{uuid.uuid4().hex[:8]}"
    secret = await svc.admin.create_client(client_id=cid, role="trading_engine")
    r = await svc.http.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, auth=(cid, secret)
    )
    assert r.status_code == 200 and "refresh_token" not in r.json()
    who = await svc.verifier().principal(f"Bearer {r.json()['access_token']}")
    assert (who.subject, who.role) == (cid, "trading_engine")
    body = {"grant_type": "client_credentials", "client_id": cid, "client_secret": secret}
    assert (await svc.http.post("/oauth/token", data=body)).status_code == 200
    r = await svc.http.post("/oauth/token", data={**body, "client_secret": "wrong"})
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    assert r.headers["www-authenticate"].startswith("Basic")
    assert await svc.audits("security.client.failed") >= 1


@pytest.mark.parametrize(
    ("content", "headers", "error"),
    [
        ("grant_type=magic", FORM, "unsupported_grant_type"),
        ("grant_type=password&username=a", FORM, "invalid_request"),
        ("grant_type=password&grant_type=password&username=a&password=b", FORM, "invalid_request"),
        ('{"grant_type": "password"}', {"content-type": "application/json"}, "invalid_request"),
        ("grant_type=password&username=%FF&password=b", FORM, "invalid_request"),
    ],
)
async def test_malformed_token_requests_are_rfc6749_errors(
    svc: Svc, content: str, headers: dict[str, str], error: str
) -> None:
    before = await svc.audits("security.token.refused")
    r = await svc.http.post("/oauth/token", content=content, headers=headers)
    assert r.status_code == 400 and r.json()["error"] == error
    assert r.headers["cache-control"] == "no-store"
    assert await svc.audits("security.token.refused") == before  # counted, not a row each
    assert await svc.failures.flush() == 1
    assert await svc.audits("security.token.refused") == before + 1


async def test_a_flood_of_anonymous_failures_is_one_audit_record_per_interval(svc: Svc) -> None:
    """200 anonymous bad posts and unknown names: counted at once, one chain row for them all."""
    before = await svc.audits("security.token.refused"), await svc.audits("security.login.failed")
    for n in range(200):
        if n % 2:
            r = await svc.http.post("/oauth/token", content="grant_type=magic", headers=FORM)
        else:
            r = await svc.login(f"nobody-{n}")
        assert r.status_code in (400, 401)
    assert await svc.audits("security.token.refused") == before[0]
    assert await svc.failures.flush() == 200
    assert await svc.audits("security.token.refused") == before[0] + 1
    assert await svc.audits("security.login.failed") == before[1]
    async with svc.admin.pool.acquire() as conn:
        details = await conn.fetchval(
            "SELECT details FROM audit_records WHERE action = 'security.token.refused'"
            " ORDER BY seq DESC LIMIT 1"
        )
    counts = {(c["grant"], c["error"]): c["n"] for c in json.loads(details)["counts"]}
    assert counts == {("other", "unsupported_grant_type"): 100, ("password", "unknown_user"): 100}
    sample = REGISTRY.get_sample_value(
        "alluse_token_failures_total", {"grant": "password", "error": "unknown_user"}
    )
    assert sample is not None and sample >= 100


SQL = "x'); DROP TABLE users; --\" OR 1=1 %_\\"
HUGE = "A" * 1_000_000


@pytest.mark.parametrize("value", [SQL, HUGE], ids=["sql", "1MB"])
@pytest.mark.parametrize(
    "field", ["grant_type", "username", "password", "refresh_token", "client_id", "client_secret"]
)
async def test_hostile_text_in_every_form_field_is_refused_cleanly(
    svc: Svc, field: str, value: str
) -> None:
    async with svc.admin.pool.acquire() as conn:
        users = await conn.fetchval("SELECT count(*) FROM users")
    grant = {"username": "password", "password": "password", "refresh_token": "refresh_token"}.get(
        field, "client_credentials"
    )
    data = {
        "grant_type": grant,
        "username": "nobody",
        "password": PASSWORD,
        "refresh_token": "r",
        "client_id": "c",
        "client_secret": "s",
        field: value,
    }
    r = await svc.http.post("/oauth/token", data=data)
    assert r.status_code in (400, 401), r.text
    assert r.json()["error"] in (
        "invalid_request",
        "invalid_grant",
        "invalid_client",
        "unsupported_grant_type",
    )
    r = await svc.http.post("/oauth/revoke", data={"token": value})
    assert r.status_code in (200, 400) and r.status_code != 500
    async with svc.admin.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM users") == users
        assert await conn.fetchval("SELECT to_regclass('users')") is not None


async def test_sql_metacharacters_are_stored_verbatim_and_work(svc: Svc) -> None:
    name = f"{SQL}{uuid.uuid4().hex[:6]}"
    await svc.admin.create_user(
        app.passwords_from(svc.settings), username=name, password=PASSWORD, role="viewer", email=SQL
    )
    assert (await svc.login(name)).status_code == 200
    async with svc.admin.pool.acquire() as conn:
        row = await store.user(conn, username=name)
    assert row is not None and svc.admin.fernet.decrypt(row["email_enc"].encode()).decode() == SQL


async def test_rehash_on_login_when_parameters_change(svc: Svc) -> None:
    from services.security.passwords import Passwords

    name = f"u-{uuid.uuid4().hex[:10]}"
    old = Passwords(memory_kib=8192, time_cost=1, parallelism=1)
    await svc.admin.create_user(old, username=name, password=PASSWORD, role="viewer", email=None)
    assert (await svc.login(name)).status_code == 200
    async with svc.admin.pool.acquire() as conn:
        phc = (await store.user(conn, username=name))["password_hash"]  # type: ignore[index]
    assert phc.startswith("$argon2id$v=19$m=19456,t=2,p=1$")


async def test_signing_key_rotation_keeps_old_kid_in_jwks_and_old_tokens_valid(svc: Svc) -> None:
    name, _ = await svc.user()
    old = (await svc.login(name)).json()["access_token"]
    old_kid = jwt.get_unverified_header(old)["kid"]
    new_kid = await svc.admin.rotate_signing_key()
    kids = [k["kid"] for k in (await svc.http.get("/.well-known/jwks.json")).json()["keys"]]
    assert old_kid in kids and new_kid in kids
    new = (await svc.login(name)).json()["access_token"]
    assert jwt.get_unverified_header(new)["kid"] == new_kid
    verifier = svc.verifier()
    await verifier.principal(f"Bearer {old}")
    await verifier.principal(f"Bearer {new}")


async def test_user_created_by_the_cli_gets_a_token_over_http(
    svc: Svc, tmp_path: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from services.cli.__main__ import build_parser

    s = svc.settings
    for var, value in {
        "DATABASE_URL": s.database_url,
        "REDIS_URL": s.redis_url,
        "ALLUSE_STREAM_PREFIX": s.stream_prefix,
        "ALLUSE_ENCRYPTION_KEYS": KEY,
        "ALLUSE_AUDIT_KEYS": AUDIT_KEY,
    }.items():
        monkeypatch.setenv(var, value)
    pw = tmp_path / "pw"
    pw.write_text(PASSWORD + "\n")
    name = f"admin-{secrets.token_hex(4)}"
    args = build_parser().parse_args(
        ["security", "create-admin", "--username", name, "--password-file", str(pw)]
    )
    assert await args.func(args) == 0
    r = await svc.login(name)
    assert r.status_code == 200
    assert (await svc.verifier().principal(f"Bearer {r.json()['access_token']}")).role == "admin"


async def test_audit_records_are_stored_only_from_the_service_they_name(
    svc: Svc, signer: Signer
) -> None:
    s = svc.settings.streams
    stream = s.key(AUDIT)

    def record(actor: str, cause: CloudEvent, source: str = "alluse/account-service") -> Any:
        return audit_event(
            s, source=source, action=cause.type, actor=actor, subject="acct-7", cause=cause
        )[1]

    command = decode(
        {
            k.encode(): v.encode()
            for k, v in ce("alluse.account.deposit", {}, source="ops/tool").items()
        }
    )
    # Two honest producers with the same id under different sources: two records, no clash.
    twin = decode(
        {
            k.encode(): v.encode()
            for k, v in ce("alluse.account.deposit", {}, source="ops/other", id_=command.id).items()
        }
    )
    real, real_twin = record("user-7", command), record("user-8", twin)
    forged = {**record("forger", command), "id": "forged-1", "time": "2001-01-01T00:00:00Z"}
    preempted = {**real, "data": real["data"].replace("user-7", "attacker")}  # the real id, first
    posing = signer.sign("integration", {**record("poser", command), "id": "posing-1"})
    for fields in (
        forged,
        preempted,
        posing,
        signer.sign("account", real),
        signer.sign("account", real_twin),
    ):
        await xadd(svc.redis, stream, fields)

    async def stored() -> bool:
        async with svc.admin.pool.acquire() as conn:
            return bool(
                await conn.fetchval("SELECT count(*) FROM audit_records WHERE actor = 'user-8'")
            )

    await until(stored)
    async with svc.admin.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT event_id, actor, source FROM audit_records WHERE subject = 'acct-7'"
            " AND action <> 'command.denied'"  # the refusals' own records are counted below
        )
    assert sorted(r["actor"] for r in rows) == ["user-7", "user-8"]
    assert len({r["event_id"] for r in rows}) == 2

    async def refusals_recorded() -> bool:  # each refusal leaves a record of its own
        return await svc.audits("command.denied") >= 3

    await until(refusals_recorded)


async def test_an_entry_on_the_revocation_stream_that_is_not_its_own_is_dead_lettered(
    svc: Svc, signer: Signer
) -> None:
    s = svc.settings.streams
    stream, dlq = s.key(REVOCATIONS), s.dlq(REVOCATIONS)
    until_ = str(time.time() + 3600)
    everyone = {"type": REVOKED, "kind": "user", "value": "u-1", "at": until_, "until": until_}
    junk = [
        everyone,  # unsigned
        signer.sign("account", everyone),  # signed, by a service that does not revoke
        signer.sign(
            "security", {"type": REVOKED, "kind": "nonsense", "value": "x", "until": until_}
        ),
    ]
    genuine = signer.sign(
        "security", {"type": REVOKED, "kind": "jti", "value": "j-1", "until": until_}
    )
    for fields in (*junk, genuine):
        await xadd(svc.redis, stream, fields)

    async def all_dead() -> bool:
        return int(await svc.redis.xlen(dlq)) == len(junk)

    await until(all_dead)
    copies = [
        {k.decode(): v.decode() for k, v in f.items()} for _, f in await entries(svc.redis, dlq)
    ]
    reasons = [c["dlq_reason"] for c in copies]
    assert reasons[0].startswith("unauthorized") and reasons[1].startswith("forbidden")
    assert "unknown kind 'nonsense'" in reasons[2]
    assert all(c["dlq_stream"] == stream for c in copies)
    left = [
        {k.decode(): v.decode() for k, v in f.items()} for _, f in await entries(svc.redis, stream)
    ]
    assert [e.get("value") for e in left] == ["j-1"]  # the refused ones are gone from the stream


async def test_published_audit_heads_are_kept_for_their_retention(
    settings: Settings, redis: Redis, signer: Signer
) -> None:
    sec = security_settings(
        settings,
        signing_key=signer.seed("security"),
        service_keys=signer.service_keys(),
        audit_heads_retention="3600",
    )
    service = await app.build(sec)
    try:
        stream = sec.streams.key(AUDIT_HEADS)
        now_ms = int(time.time() * 1000)
        for age_s, seq in ((7200, "1"), (600, "2")):  # two hours and ten minutes ago
            fields = {"seq": seq, "hash": f"h{seq}", "time": "t"}
            await xadd(redis, stream, fields, id=f"{now_ms - age_s * 1000}-0")
        await service.rt.janitor().once()
        assert [f[b"seq"] for _, f in await entries(redis, stream)] == [b"2"]
    finally:
        await service.rt.pool.close()
        await service.rt.redis.aclose()
