"""Encryption at rest: a MultiFernet from configured keys (primary first), never generated here."""

import base64
import binascii
import hashlib
from dataclasses import dataclass

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

HOW = (
    "generate a key with `alluse security gen-key` and set"
    " ALLUSE_ENCRYPTION_KEYS=<new key>[,<older keys>] (primary first)"
)


class KeyConfigError(RuntimeError):
    pass


def load_fernet(keys: str) -> MultiFernet:
    parts = [k.strip() for k in keys.split(",") if k.strip()]
    if not parts:
        raise KeyConfigError(f"ALLUSE_ENCRYPTION_KEYS is not set: {HOW}")
    try:
        return MultiFernet([Fernet(k) for k in parts])
    except (ValueError, binascii.Error) as exc:
        raise KeyConfigError(
            f"ALLUSE_ENCRYPTION_KEYS holds an invalid key ({exc}); {HOW}"
        ) from None


def gen_key() -> str:
    return Fernet.generate_key().decode()


def encrypt(fernet: MultiFernet, text: str | None) -> str | None:
    return None if text is None else fernet.encrypt(text.encode()).decode()


def decrypt(fernet: MultiFernet, token: str | None) -> str | None:
    if token is None:
        return None
    try:
        return fernet.decrypt(token.encode()).decode()
    except InvalidToken:
        raise KeyConfigError(
            f"a stored value is encrypted under no configured key; {HOW}"
        ) from None


def rotate(fernet: MultiFernet, token: str) -> str:
    """Re-encrypt under the primary key (fails if no configured key can decrypt it)."""
    try:
        return fernet.rotate(token.encode()).decode()
    except InvalidToken:
        raise KeyConfigError(
            f"a stored value is encrypted under no configured key; {HOW}"
        ) from None


AUDIT_HOW = (
    "generate a key with `alluse security gen-key` and set"
    " ALLUSE_AUDIT_KEYS=<new key>[,<older keys>] (newest first; keep older keys while records"
    " keyed with them are kept)"
)


@dataclass(frozen=True)
class AuditKeys:
    """The audit chain's HMAC keys by id; new records are keyed with `primary`."""

    primary: str
    keys: dict[str, bytes]


def load_audit_keys(text: str) -> AuditKeys:
    parts = [k.strip() for k in text.split(",") if k.strip()]
    if not parts:
        raise KeyConfigError(f"ALLUSE_AUDIT_KEYS is not set: {AUDIT_HOW}")
    keys: dict[str, bytes] = {}
    for part in parts:
        try:
            raw = base64.urlsafe_b64decode(part.encode())
        except (ValueError, binascii.Error):
            raw = b""
        if len(raw) < 32:
            raise KeyConfigError(f"ALLUSE_AUDIT_KEYS holds a key that is not 32 bytes; {AUDIT_HOW}")
        # The id names the key in each record; a digest of 32 random bytes reveals nothing.
        keys.setdefault(hashlib.sha256(raw).hexdigest()[:16], raw)
    return AuditKeys(primary=next(iter(keys)), keys=keys)
