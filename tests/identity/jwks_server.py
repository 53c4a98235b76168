"""A JWKS endpoint on 127.0.0.1 for tests: it serves chosen keys, can fail or stall on demand,
and counts what it was asked."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

STALL_LIMIT = 10.0  # a stalled answer is released by the test, or after this many seconds


@dataclass
class SigningKey:
    """A provider's key pair, as a JWK for the set and a signer for tokens."""

    algorithm: str
    private: Any
    kid: str = field(default_factory=lambda: f"key-{uuid.uuid4().hex[:8]}")

    @classmethod
    def generate(cls, algorithm: str) -> SigningKey:
        if algorithm == "RS256":
            return cls(algorithm, rsa.generate_private_key(public_exponent=65537, key_size=2048))
        if algorithm == "ES256":
            return cls(algorithm, ec.generate_private_key(ec.SECP256R1()))
        if algorithm == "EdDSA":
            return cls(algorithm, ed25519.Ed25519PrivateKey.generate())
        raise ValueError(algorithm)

    @property
    def jwk(self) -> dict[str, Any]:
        public = self.private.public_key()
        to_jwk: Any = {
            "RS256": jwt.algorithms.RSAAlgorithm.to_jwk,
            "ES256": jwt.algorithms.ECAlgorithm.to_jwk,
            "EdDSA": jwt.algorithms.OKPAlgorithm.to_jwk,
        }[self.algorithm]
        data: dict[str, Any] = to_jwk(public, as_dict=True)
        return {**data, "kid": self.kid, "alg": self.algorithm, "use": "sig"}

    @property
    def public_pem(self) -> bytes:
        return bytes(
            self.private.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )

    def sign(self, claims: dict[str, Any], **headers: Any) -> str:
        headers = {"kid": self.kid, **headers}
        return jwt.encode(claims, self.private, self.algorithm, headers=headers)


class JwksServer:
    """Serves {"keys": [...]} at any path; `mode` is "ok", "503" or "stall"."""

    def __init__(self) -> None:
        self.keys: list[SigningKey] = []
        self.mode = "ok"
        self.requests: list[str] = []
        self.requested = threading.Event()  # set whenever a request arrives
        self.release = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # the name http.server calls
                server.requests.append(self.path)
                server.requested.set()
                if server.mode == "stall":
                    server.release.wait(STALL_LIMIT)
                if server.mode == "503":
                    self.send_response(503)
                    self.end_headers()
                    return
                body = json.dumps({"keys": [key.jwk for key in server.keys]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                return None

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._http.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._http.server_address[1]}"

    @property
    def fetches(self) -> int:
        return len(self.requests)

    @contextmanager
    def running(self) -> Iterator[JwksServer]:
        thread = threading.Thread(target=self._http.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.release.set()
            self._http.shutdown()
            self._http.server_close()
            thread.join(timeout=STALL_LIMIT)
