"""Pure rules of the security service: password and text policies, roles, lockout. No I/O."""

import unicodedata
from datetime import datetime, timedelta

from shared.contracts.permissions import Role

USERNAME_MAX = 150
PASSWORD_MAX = 1024  # argon2 of a megabyte is a denial of service, not a password
EMAIL_MAX = 320
TOKEN_MAX = 4096


class SecurityError(Exception):
    """A refusal the caller can understand; `code` follows RFC 6749 section 5.2 where it can."""

    code = "invalid_request"
    status = 400

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


class InvalidRequest(SecurityError):
    pass


class InvalidGrant(SecurityError):
    code = "invalid_grant"


class InvalidClient(SecurityError):
    code = "invalid_client"
    status = 401


class UnsupportedGrantType(SecurityError):
    code = "unsupported_grant_type"


class NotFound(SecurityError):
    code = "not_found"
    status = 404


def password_problems(password: str) -> list[str]:
    """What the password lacks (docs/rules.md section 10: 8+ chars, upper, lower, digit,
    special)."""
    problems = []
    if len(password) < 8:
        problems.append("at least 8 characters")
    if len(password) > PASSWORD_MAX:
        problems.append(f"at most {PASSWORD_MAX} characters")
    if not any(c.isupper() for c in password):
        problems.append("an upper-case letter")
    if not any(c.islower() for c in password):
        problems.append("a lower-case letter")
    if not any(c.isdigit() for c in password):
        problems.append("a digit")
    if not any(not c.isalnum() for c in password):
        problems.append("a special character")
    return problems


def check_password(password: str) -> None:
    problems = password_problems(password)
    if problems:
        raise InvalidRequest("password needs " + ", ".join(problems))


def check_text(name: str, value: str, limit: int) -> str:
    """Any printable text up to `limit` characters: stored verbatim, never interpreted."""
    if not value or len(value) > limit:
        raise InvalidRequest(f"{name} must be 1 to {limit} characters")
    if any(unicodedata.category(c).startswith("C") for c in value):
        raise InvalidRequest(f"{name} must not contain control characters")
    return value


def check_role(role: str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise InvalidRequest(f"unknown role '{role[:50]}'; one of {', '.join(Role)}") from None


def is_locked(status: str, locked_until: datetime | None, now: datetime) -> bool:
    """A lock set by failed logins expires; one set by an admin (no end) does not."""
    return status == "locked" and (locked_until is None or locked_until > now)


def may_refresh(status: str, locked_until: datetime | None) -> bool:
    """A lock from failed logins throttles passwords only; an admin's lock (no end) refuses."""
    return status == "active" or (status == "locked" and locked_until is not None)


def after_failure(
    failed: int, *, now: datetime, max_failures: int, lock_for: timedelta
) -> tuple[int, datetime | None]:
    """The new failure count, and the lock's end when this failure reaches the limit."""
    failed += 1
    return failed, (now + lock_for if failed >= max_failures else None)
