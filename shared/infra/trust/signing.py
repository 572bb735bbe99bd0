"""A service's identity: the Ed25519 key it signs every entry it writes with, and the check.

Each service process holds its own private key (ALLUSE_SIGNING_KEY, base64url of the 32-byte
seed; `alluse security gen-service-keys` makes a set). The security service publishes the
public halves (ALLUSE_SERVICE_KEYS=account=<x>,integration=<x>, plus its own) in its JWKS,
each bound to its service by the JWK member `service`.

    signer = EntrySigner.from_settings(settings, "account")
    fields = signer.sign(fields)                  # adds `signed_at` and `signature: <kid>.<sig>.<index>.<path>`
    many = signer.sign_many(entries)              # one Ed25519 signature per 64 entries
    service = await signer_of(keys, fields)       # who signed it, or Rejected
"""

import base64
import binascii
import hashlib
import time
from collections.abc import Mapping, Sequence
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from shared.contracts.trust import (
    GROUP,
    MAX_DEPTH,
    SECURITY,
    SERVICES,
    SIGNATURE,
    SIGNED_AT,
    leaf,
    root_of,
    signed_root,
    tree,
)
from shared.infra.runtime.settings import Settings
from shared.infra.stream.messaging import Rejected
from shared.infra.trust.keys import KeySet, UnknownKey

HOW = "make a set with `alluse security gen-service-keys` (see docs/security.md, 'Who signs what')"


class IdentityError(RuntimeError):
    """A service without a usable key of its own refuses to start."""


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def new_seed() -> str:
    key = Ed25519PrivateKey.generate()
    raw = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return b64(raw)


def public_of(seed: str) -> str:
    return b64(raw_public(Ed25519PrivateKey.from_private_bytes(unb64(seed)).public_key()))


def new_identities() -> dict[str, str]:
    """A private seed for each service, as `make run` and `gen-service-keys` make them."""
    return {service: new_seed() for service in SERVICES}


def identity_env(seeds: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """Each service's environment: its own ALLUSE_SIGNING_KEY; the security service's also the
    others' public halves (ALLUSE_SERVICE_KEYS), which it publishes."""
    public = ",".join(f"{n}={public_of(s)}" for n, s in seeds.items() if n != SECURITY)
    env = {n: {"ALLUSE_SIGNING_KEY": s} for n, s in seeds.items()}
    env[SECURITY]["ALLUSE_SERVICE_KEYS"] = public
    return env


def service_jwk(service: str, public: str) -> dict[str, Any]:
    """The JWK the security service publishes for one service's entry-signing key."""
    kid = f"{service}-{hashlib.sha256(unb64(public)).hexdigest()[:12]}"
    return {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": public,
        "kid": kid,
        "alg": "EdDSA",
        "use": "sig",
        "service": service,
    }


class EntrySigner:
    def __init__(self, service: str, key: Ed25519PrivateKey) -> None:
        self.service, self.key = service, key
        self.public = b64(raw_public(key.public_key()))
        self.kid = service_jwk(service, self.public)["kid"]

    @classmethod
    def from_seed(cls, service: str, seed: str) -> "EntrySigner":
        try:
            return cls(service, Ed25519PrivateKey.from_private_bytes(unb64(seed.strip())))
        except (ValueError, binascii.Error):
            raise IdentityError(
                f"the {service} service's signing key is not valid; {HOW}"
            ) from None

    @classmethod
    def from_settings(cls, settings: Settings, service: str) -> "EntrySigner":
        seed = settings.signing_key.get_secret_value()
        if not seed:
            raise IdentityError(f"ALLUSE_SIGNING_KEY is not set for the {service} service; {HOW}")
        return cls.from_seed(service, seed)

    def jwk(self) -> dict[str, Any]:
        return service_jwk(self.service, self.public)

    def sign(self, fields: Mapping[str, str]) -> dict[str, str]:
        return self.sign_many([fields])[0]

    def sign_letter(self, fields: Mapping[bytes, bytes]) -> dict[bytes, bytes]:
        """A dead letter, signed: its fields (the original entry's, the reason, the writer the
        service verified) with `dlq_signed_at`, and `dlq_signature: <kid>.<signature>`."""
        out = {**fields, LETTER_SIGNED_AT: str(int(time.time() * 1000)).encode()}
        out[LETTER_SIGNATURE] = f"{self.kid}.{b64(self.key.sign(letter_bytes(out)))}".encode()
        return out

    def sign_many(
        self, entries: Sequence[Mapping[str, str]], *, at_ms: int | None = None
    ) -> list[dict[str, str]]:
        """Each entry with its `signature`: one Ed25519 signature per GROUP entries, over the
        root of their Merkle tree, and each entry's own path to it (trust.py). Each also gets
        `signed_at`, under the signature, which lets readers refuse a replay (guards.py).
        `at_ms` fixes the signing time: the test vectors (tests/vectors/) are reproducible."""
        signed: list[dict[str, str]] = []
        at = str(int(time.time() * 1000) if at_ms is None else at_ms)
        stamped = [{**fields, SIGNED_AT: at} for fields in entries]
        for start in range(0, len(stamped), GROUP):
            group = stamped[start : start + GROUP]
            depth, root, paths = tree([leaf(fields) for fields in group])
            signature = b64(self.key.sign(signed_root(depth, root)))
            for index, (fields, path) in enumerate(zip(group, paths, strict=True)):
                proof = f"{self.kid}.{signature}.{index}.{b64(b''.join(path))}"
                signed.append({**fields, SIGNATURE: proof})
        return signed


async def signer_of(keys: KeySet, fields: Mapping[str, str]) -> str:
    """The service whose published key signed exactly these fields; else Rejected.

    KeysUnavailable (the JWKS cannot be fetched) passes through: the entry waits.
    """
    parts = (fields.get(SIGNATURE) or "").split(".")
    if len(parts) != 4 or not parts[0] or not parts[1] or not parts[2].isdigit():
        raise Rejected("unauthorized", "entry carries no service signature")
    kid, signature, index, path = parts
    try:
        key = await keys.get(kid)
    except UnknownKey as exc:
        raise Rejected("unauthorized", f"signing key not recognised: {exc}") from None
    if key.service is None or not isinstance(key.key, Ed25519PublicKey):
        raise Rejected("unauthorized", f"key {kid[:40]!r} is not a service's signing key")
    try:
        raw = unb64(path)
        siblings = [raw[i : i + 32] for i in range(0, len(raw), 32)]
        if len(raw) % 32 or len(siblings) > MAX_DEPTH or int(index) >> len(siblings):
            raise ValueError("malformed path")
        message = signed_root(len(siblings), root_of(leaf(fields), int(index), siblings))
        if (kid, signature, message) not in keys.verified:  # one check per signed group
            key.key.verify(unb64(signature), message)
            keys.remember((kid, signature, message))
    except (InvalidSignature, ValueError, binascii.Error):
        raise Rejected("unauthorized", "signature does not match the entry") from None
    return str(key.service)


def text_fields(raw: Mapping[Any, Any]) -> dict[str, str]:
    """Redis fields as text (entries that are not UTF-8 were dead-lettered by decode already)."""
    return {
        (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
        for k, v in raw.items()
    }


# A dead letter's own signature (the original entry may carry a service's signature too):
# over every field but itself and `authorization`, which a letter never holds (redacted) and a
# re-drive fills with the operator's token.
LETTER_SIGNATURE = b"dlq_signature"
LETTER_SIGNED_AT = b"dlq_signed_at"
LETTER_CONTEXT = b"alluse-dead-letter-v1\n"  # a letter's bytes are never an entry's
_UNSIGNED = frozenset({LETTER_SIGNATURE, b"authorization"})


def letter_bytes(fields: Mapping[bytes, bytes]) -> bytes:
    """The signed form of a dead letter: raw bytes, each name and value length-prefixed (a
    dead letter need not be UTF-8), in name order."""
    items = sorted((k, v) for k, v in fields.items() if k not in _UNSIGNED)
    parts = [len(x).to_bytes(4, "big") + x for k, v in items for x in (k, v)]
    return LETTER_CONTEXT + b"".join(parts)


async def letter_signer(keys: KeySet, fields: Mapping[bytes, bytes]) -> str:
    """The service that signed this dead letter, or Rejected (KeysUnavailable passes through)."""
    kid, _, signature = fields.get(LETTER_SIGNATURE, b"").decode(errors="replace").partition(".")
    if not kid or not signature:
        raise Rejected("unauthorized", "dead letter carries no service's signature")
    try:
        key = await keys.get(kid)
    except UnknownKey as exc:
        raise Rejected("unauthorized", f"dead letter's key not recognised: {exc}") from None
    if key.service is None or not isinstance(key.key, Ed25519PublicKey):
        raise Rejected("unauthorized", f"key {kid[:40]!r} is not a service's signing key")
    try:
        key.key.verify(unb64(signature), letter_bytes(fields))
    except (InvalidSignature, ValueError, binascii.Error):
        raise Rejected("unauthorized", "dead letter's signature does not hold") from None
    return str(key.service)
