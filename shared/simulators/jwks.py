"""A token key and JWKS standing in for the security service: tests, the bench, demos.

It publishes one access-token key and one entry-signing key per service (each bound to its
service), as the security service does; `seed(name)` is that service's ALLUSE_SIGNING_KEY.
`withdraw(kid)`, `publish(...)` and `down` change what it serves, for key-rotation tests.
"""

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import SecretStr

from shared.contracts.trust import SERVICES
from shared.infra.trust.signing import EntrySigner, new_seed


def _serve(signer: "Signer") -> ThreadingHTTPServer:
    """The JWKS over real HTTP, as the security service serves it."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            signer.requests += 1
            if signer.down:
                self.send_response(503)
                self.end_headers()
                return
            body = json.dumps({"keys": signer.jwks}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class Signer:
    """Serves its JWKS over HTTP (`jwks_url`) until `close()`; also written to `jwks_path`."""

    def __init__(
        self,
        jwks_path: Path | None = None,
        *,
        issuer: str = "alluse-security",
        audience: str = "alluse",
    ) -> None:
        self.issuer, self.audience = issuer, audience
        self.seeds = {name: new_seed() for name in SERVICES}
        self.services = {name: EntrySigner.from_seed(name, s) for name, s in self.seeds.items()}
        self.key, self.kid, jwk = self._token_key()
        self.jwks: list[dict[str, Any]] = [jwk, *(e.jwk() for e in self.services.values())]
        self.down = False  # True: the JWKS answers 503, as during an outage
        self.requests = 0  # JWKS requests answered or refused
        if jwks_path is not None:
            jwks_path.write_text(json.dumps({"keys": self.jwks}))
        self.server = _serve(self)
        self.jwks_url = f"http://127.0.0.1:{self.server.server_port}/.well-known/jwks.json"

    @staticmethod
    def _token_key() -> tuple[Ed25519PrivateKey, str, dict[str, Any]]:
        key, kid = Ed25519PrivateKey.generate(), f"test-{uuid.uuid4().hex[:8]}"
        jwk = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(key.public_key()))
        jwk.update(kid=kid, use="sig", alg="EdDSA")
        return key, kid, jwk

    def rotate(self) -> tuple[Ed25519PrivateKey, str]:
        """A new access-token key replaces the current one in the JWKS; returns the old one."""
        old = (self.key, self.kid)
        self.key, self.kid, jwk = self._token_key()
        self.jwks = [jwk, *(k for k in self.jwks if k["kid"] != old[1])]
        return old

    def service_keys(self) -> str:
        """ALLUSE_SERVICE_KEYS for a security service that publishes the other services' keys."""
        return ",".join(f"{n}={e.public}" for n, e in self.services.items() if n != "security")

    def seed(self, service: str) -> SecretStr:
        return SecretStr(self.seeds[service])

    def sign(self, service: str, fields: dict[str, str]) -> dict[str, str]:
        """An entry as `service` writes it: signed with its key."""
        return self.services[service].sign(fields)

    def claims(self, role: str, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": f"user-{role}",
            "role": role,
            "iat": now,
            "nbf": now,
            "exp": now + 900,
            "jti": uuid.uuid4().hex,
            # The whole platform, as the security service grants a client given `*`; pass
            # portfolios=[...] for a token scoped to some (docs/scopes.md).
            "portfolios": ["*"],
        }
        claims.update(overrides)
        return claims

    def token(self, role: str = "admin", **overrides: Any) -> str:
        return jwt.encode(
            self.claims(role, **overrides), self.key, algorithm="EdDSA", headers={"kid": self.kid}
        )

    def bearer(self, role: str = "admin", **overrides: Any) -> str:
        return f"Bearer {self.token(role, **overrides)}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
