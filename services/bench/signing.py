"""The bench's own token key and the account service's identity, as a JWKS served over HTTP,
standing in for the security service."""

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shared.infra.signing import EntrySigner, new_seed


class Signer:
    """An Ed25519 key; `url` serves its JWKS until `close()`."""

    def __init__(self, *, issuer: str = "alluse-security", audience: str = "alluse") -> None:
        self.key = Ed25519PrivateKey.generate()
        self.kid = f"bench-{uuid.uuid4().hex[:8]}"
        self.issuer, self.audience = issuer, audience
        jwk = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(self.key.public_key()))
        jwk.update(kid=self.kid, use="sig", alg="EdDSA")
        # The account service's own identity: it signs every entry it writes with this key.
        self.account_seed = new_seed()
        account = EntrySigner.from_seed("account", self.account_seed).jwk()
        body = json.dumps({"keys": [jwk, account]}).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/.well-known/jwks.json"

    def bearer(self, role: str = "operator", *, ttl: int = 3600) -> str:
        """One token for the whole run, as a trading engine sends many commands with one."""
        now = int(time.time())
        claims = {
            "iss": self.issuer, "aud": self.audience, "sub": f"bench-{role}", "role": role,
            "iat": now, "nbf": now, "exp": now + ttl, "jti": uuid.uuid4().hex,
        }  # fmt: skip
        token = jwt.encode(claims, self.key, algorithm="EdDSA", headers={"kid": self.kid})
        return f"Bearer {token}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
