"""Ed25519 signing keys: private halves stored encrypted, public halves served as a JWKS."""

import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jwt
from cryptography.fernet import MultiFernet
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.security import crypto

ALG = "EdDSA"


@dataclass(frozen=True)
class NewKey:
    kid: str
    private_enc: str
    public_jwk: dict[str, Any]


def new_signing_key(fernet: MultiFernet) -> NewKey:
    key = Ed25519PrivateKey.generate()
    kid = f"{datetime.now(UTC):%Y%m%d}-{secrets.token_hex(6)}"
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    jwk = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(key.public_key()))
    jwk.update(kid=kid, use="sig", alg=ALG)
    enc = crypto.encrypt(fernet, pem)
    assert enc is not None
    return NewKey(kid, enc, jwk)


class KeyCache:
    """Decrypted private keys by kid, so signing costs no Fernet decryption after the first."""

    def __init__(self, fernet: MultiFernet) -> None:
        self.fernet = fernet
        self._keys: dict[str, Ed25519PrivateKey] = {}

    def private(self, kid: str, private_enc: str) -> Ed25519PrivateKey:
        key = self._keys.get(kid)
        if key is None:
            pem = crypto.decrypt(self.fernet, private_enc)
            assert pem is not None
            loaded = serialization.load_pem_private_key(pem.encode(), password=None)
            if not isinstance(loaded, Ed25519PrivateKey):
                raise crypto.KeyConfigError(f"signing key {kid} is not Ed25519")
            key = self._keys[kid] = loaded
        return key
