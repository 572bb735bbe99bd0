"""A test signing key and JWKS file, standing in for the security service in service tests."""

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


def _serve(body: bytes) -> ThreadingHTTPServer:
    """The JWKS over real HTTP, as the security service serves it (PyJWKClient takes only http)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
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
    def __init__(
        self, jwks_path: Path, *, issuer: str = "alluse-security", audience: str = "alluse"
    ) -> None:
        self.key = Ed25519PrivateKey.generate()
        self.kid = f"test-{uuid.uuid4().hex[:8]}"
        self.issuer, self.audience = issuer, audience
        jwk = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(self.key.public_key()))
        jwk.update(kid=self.kid, use="sig", alg="EdDSA")
        body = json.dumps({"keys": [jwk]}).encode()
        jwks_path.write_bytes(body)
        self.server = _serve(body)
        self.jwks_url = f"http://127.0.0.1:{self.server.server_port}/.well-known/jwks.json"

    def claims(self, role: str, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims = {
            "iss": self.issuer, "aud": self.audience, "sub": f"user-{role}", "role": role,
            "iat": now, "nbf": now, "exp": now + 900, "jti": uuid.uuid4().hex,
        }  # fmt: skip
        claims.update(overrides)
        return claims

    def token(self, role: str = "admin", **overrides: Any) -> str:
        return jwt.encode(
            self.claims(role, **overrides), self.key, algorithm="EdDSA", headers={"kid": self.kid}
        )

    def bearer(self, role: str = "admin", **overrides: Any) -> str:
        return f"Bearer {self.token(role, **overrides)}"
