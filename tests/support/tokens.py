"""A test signing key and JWKS file, standing in for the security service in service tests."""

import json
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


class Signer:
    def __init__(self, jwks_path: Path, *, issuer: str = "alluse-security", audience: str = "alluse") -> None:
        self.key = Ed25519PrivateKey.generate()
        self.kid = f"test-{uuid.uuid4().hex[:8]}"
        self.issuer, self.audience = issuer, audience
        jwk = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(self.key.public_key()))
        jwk.update(kid=self.kid, use="sig", alg="EdDSA")
        jwks_path.write_text(json.dumps({"keys": [jwk]}))
        self.jwks_url = jwks_path.as_uri()

    def claims(self, role: str, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims = {
            "iss": self.issuer, "aud": self.audience, "sub": f"user-{role}", "role": role,
            "iat": now, "nbf": now, "exp": now + 900, "jti": uuid.uuid4().hex,
        }  # fmt: skip
        claims.update(overrides)
        return claims

    def token(self, role: str = "admin", **overrides: Any) -> str:
        return jwt.encode(self.claims(role, **overrides), self.key, algorithm="EdDSA", headers={"kid": self.kid})

    def bearer(self, role: str = "admin", **overrides: Any) -> str:
        return f"Bearer {self.token(role, **overrides)}"
