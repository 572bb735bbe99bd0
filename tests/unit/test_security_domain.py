"""Pure rules of the security service (docs/rules.md section 10), no servers."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from redis.asyncio import Redis

from services.security import crypto, domain
from services.security.domain import InvalidRequest
from services.security.passwords import Passwords
from shared.contracts.streams import Streams
from shared.infra.trust.audit import REDACTED, audit_event, scrub
from shared.infra.trust.keys import KeySet
from shared.infra.trust.revocations import Revocations

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("password", "lacks"),
    [
        ("Sh0rt!", "at least 8 characters"),
        ("alllower1!", "an upper-case letter"),
        ("ALLUPPER1!", "a lower-case letter"),
        ("NoDigits!!", "a digit"),
        ("NoSpecial11", "a special character"),
        ("A1!" + "a" * 2000, "at most 1024 characters"),
    ],
)
def test_rule_password_needs_8_chars_upper_lower_digit_special(password: str, lacks: str) -> None:
    assert lacks in domain.password_problems(password)
    with pytest.raises(InvalidRequest, match=lacks):
        domain.check_password(password)


def test_good_password_passes_policy() -> None:
    assert domain.password_problems("Correct-Horse-9") == []


def test_rule_five_failed_logins_lock_the_user() -> None:
    failed, until = 0, None
    for _ in range(4):
        failed, until = domain.after_failure(
            failed, now=NOW, max_failures=5, lock_for=timedelta(minutes=15)
        )
        assert until is None
    failed, until = domain.after_failure(
        failed, now=NOW, max_failures=5, lock_for=timedelta(minutes=15)
    )
    assert failed == 5 and until == NOW + timedelta(minutes=15)


def test_lock_expires_after_lock_time_but_admin_lock_does_not() -> None:
    assert domain.is_locked("locked", NOW + timedelta(seconds=1), NOW)
    assert not domain.is_locked("locked", NOW - timedelta(seconds=1), NOW)
    assert domain.is_locked("locked", None, NOW)
    assert not domain.is_locked("active", None, NOW)


@pytest.mark.parametrize("bad", ["", "x" * 151, "a\x00b", "tab\there", "new\nline"])
def test_text_fields_refuse_empty_overlong_and_control_characters(bad: str) -> None:
    with pytest.raises(InvalidRequest):
        domain.check_text("username", bad, domain.USERNAME_MAX)


def test_sql_metacharacters_are_plain_text() -> None:
    name = "robert'); DROP TABLE users;-- \"%_\\"
    assert domain.check_text("username", name, domain.USERNAME_MAX) == name


def test_unknown_role_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="unknown role"):
        domain.check_role("root")


def test_audit_details_never_carry_secrets() -> None:
    details = {
        "username": "ann",
        "password": "x",
        "nested": {"refresh_token": "y"},
        "list": [{"client_secret": "z"}],
    }
    assert scrub(details) == {
        "username": "ann",
        "password": REDACTED,
        "nested": {"refresh_token": REDACTED},
        "list": [{"client_secret": REDACTED}],
    }
    stream, fields = audit_event(
        Streams("p."),
        source="acct",
        action="account.created",
        actor="u1",
        subject="a1",
        details={"token": "t"},
    )
    assert stream == "p.alluse.audit" and fields["type"] == "alluse.audit.recorded"
    assert '"token":"[redacted]"' in fields["data"]


def test_missing_encryption_keys_refuse_with_how_to_generate() -> None:
    with pytest.raises(crypto.KeyConfigError, match="alluse security gen-key"):
        crypto.load_fernet("")
    with pytest.raises(crypto.KeyConfigError, match="invalid key"):
        crypto.load_fernet("not-a-key")


def test_password_hash_is_argon2id_phc_with_owasp_parameters() -> None:
    pw = Passwords(memory_kib=19456, time_cost=2, parallelism=1)
    phc = pw.hash("Correct-Horse-9")
    assert phc.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert pw.verify(phc, "Correct-Horse-9") and not pw.verify(phc, "wrong")
    assert not pw.verify("not a hash", "x")
    assert Passwords(memory_kib=19456, time_cost=3, parallelism=1).needs_rehash(phc)
    assert not pw.needs_rehash(phc)


def no_keys() -> KeySet:
    """Revocations checked from entries handed in: no key is ever fetched (nor a Redis reached:
    a client connects on its first command)."""

    async def fetch() -> dict[str, Any]:
        raise AssertionError("no key is fetched here")

    return KeySet(fetch)


def test_revocations_refuse_revoked_jti_until_it_expires() -> None:
    now = [1000.0]
    r = Revocations(Redis(), "s", keys=no_keys(), clock=lambda: now[0])
    r.apply({b"kind": b"jti", b"value": b"j1", b"until": b"1100"})
    assert r.is_revoked({"jti": "j1", "sub": "u", "iat": 900})
    assert not r.is_revoked({"jti": "j2", "sub": "u", "iat": 900})
    now[0] = 1101
    assert not r.is_revoked({"jti": "j1", "sub": "u", "iat": 900})


def test_revoked_user_refuses_tokens_issued_before_not_after() -> None:
    r = Revocations(Redis(), "s", keys=no_keys(), clock=lambda: 1000.0)
    r.apply({"kind": "user", "value": "u1", "at": "990", "until": "2000"})
    assert r.is_revoked({"jti": "a", "sub": "u1", "iat": 980})
    assert not r.is_revoked({"jti": "b", "sub": "u1", "iat": 995})
    assert not r.is_revoked({"jti": "c", "sub": "u2", "iat": 980})
    r.apply({b"kind": b"user"})  # malformed: ignored, not fatal
