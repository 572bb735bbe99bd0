"""Access tokens (EdDSA JWTs named by kid) and opaque refresh tokens and client secrets."""

import hashlib
import secrets
import uuid
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.security.keys import ALG
from shared.contracts.permissions import PORTFOLIOS_CLAIM


def access_claims(
    *,
    issuer: str,
    audience: str,
    sub: str,
    role: str,
    now: float,
    ttl: int,
    portfolios: list[str] | None = None,
) -> dict[str, Any]:
    """`iat` keeps milliseconds: a revocation refuses tokens issued at or before its instant,
    so a token issued a moment after it (a rotated client's first) must not share its second.
    `portfolios`: the holder's portfolio scope (["*"]: the whole platform; docs/scopes.md)."""
    return {
        PORTFOLIOS_CLAIM: list(portfolios or []),
        "iss": issuer,
        "aud": audience,
        "sub": sub,
        "role": role,
        "iat": round(now, 3),
        "nbf": int(now),
        "exp": int(now) + ttl,
        "jti": uuid.uuid4().hex,
    }


def sign(key: Ed25519PrivateKey, kid: str, claims: dict[str, Any]) -> str:
    return jwt.encode(claims, key, algorithm=ALG, headers={"kid": kid, "typ": "at+jwt"})


def verify_own(token: str, jwks: dict[str, Any], *, issuer: str, audience: str) -> dict[str, Any]:
    """Claims of an access token this service signed (any live key); raises jwt errors."""
    kid = jwt.get_unverified_header(token).get("kid")
    jwk = next((k for k in jwks["keys"] if k["kid"] == kid), None)
    if jwk is None:
        raise jwt.InvalidTokenError(f"unknown kid {str(kid)[:40]!r}")
    key = jwt.PyJWK(jwk).key
    claims: dict[str, Any] = jwt.decode(
        token,
        key,
        algorithms=[ALG],
        issuer=issuer,
        audience=audience,
        options={"require": ["exp", "nbf", "iat", "iss", "aud", "sub", "jti", "role"]},
    )
    return claims


def new_opaque() -> str:
    """256 random bits: a refresh token or a client secret."""
    return secrets.token_urlsafe(32)


def digest(opaque: str) -> str:
    """SHA-256 suffices for 256-bit random values: nothing to brute-force, unlike a password."""
    return hashlib.sha256(opaque.encode()).hexdigest()
