"""A Docker token server for the bearer tests, run as its own process.

``GET /token?service=S&scope=repository:NAME:pull,push`` with Basic credentials answers
``{"token": <JWT>}`` signed (ES256) with the key given, granting each requested action
that ``grants`` allows the user: ``{"user": {"glob": ["pull", "push"]}}`` (user ``""``:
anonymous), plus ``registry:catalog:*`` for users in ``catalog``. Wrong credentials: 401.
The JWT follows distribution's token spec (iss, sub, aud, exp, nbf, iat, jti, access).
Tokens last ``expires_in`` seconds (a policy key, 300 by default). ``GET /requests`` lists
every token request answered so far (``user``, ``scopes``, ``time``), so a test can count
how often a client asked.
"""

from __future__ import annotations

import argparse
import base64
import fnmatch
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import jwt
from cryptography.hazmat.primitives.serialization import load_pem_private_key

ISSUER = "dockyard-test-token-server"


def sign(key_pem: bytes, claims: dict[str, Any]) -> str:
    """A JWT over ``claims`` signed with the PEM private key (ES256 or RS256 by key type)."""
    key = load_pem_private_key(key_pem, password=None)
    algorithm = "ES256" if "EC" in type(key).__name__ else "RS256"
    return jwt.encode(claims, key, algorithm=algorithm)  # type: ignore[arg-type]


def claims_for(
    service: str, subject: str, access: list[dict[str, Any]], ttl: float = 300
) -> dict[str, Any]:
    now = int(time.time())
    return {
        "iss": ISSUER,
        "sub": subject,
        "aud": service,
        "exp": now + int(ttl),
        "nbf": now - 1,
        "iat": now,
        "jti": uuid.uuid4().hex,
        "access": access,
    }


def grant(config: dict[str, Any], user: str, scopes: list[str]) -> list[dict[str, Any]]:
    """The access entries ``user`` gets out of the requested ``scopes``."""
    allowed: dict[str, list[str]] = config["grants"].get(user, {})
    access = []
    for scope in scopes:
        kind, _, rest = scope.partition(":")
        name, _, wanted = rest.rpartition(":")
        actions = [a for a in wanted.split(",") if a]
        if kind == "registry" and name == "catalog":
            if user in config.get("catalog", []):
                access.append({"type": "registry", "name": "catalog", "actions": ["*"]})
            continue
        if kind != "repository":
            continue
        granted: set[str] = set()
        for pattern, acts in allowed.items():
            if fnmatch.fnmatchcase(name, pattern):
                granted |= {a for a in actions if a in acts or "*" in acts}
        access.append({"type": "repository", "name": name, "actions": sorted(granted)})
    return access


def serve(port: int, key_pem: bytes, config: dict[str, Any]) -> None:
    answered: list[dict[str, Any]] = []
    lock = threading.Lock()
    ttl = float(config.get("expires_in", 300))

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _json(self, doc: Any) -> None:
            body = json.dumps(doc).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            url = urlparse(self.path)
            if url.path == "/requests":
                with lock:
                    self._json(list(answered))
                return
            if url.path != "/token":
                self.send_error(404)
                return
            query = parse_qs(url.query)
            user = ""
            header = self.headers.get("Authorization", "")
            if header.lower().startswith("basic "):
                name, _, password = base64.b64decode(header[6:]).decode().partition(":")
                if config["users"].get(name) != password:
                    self.send_response(401)
                    self.end_headers()
                    return
                user = name
            scopes = [s for raw in query.get("scope", []) for s in raw.split(" ") if s]
            service = query.get("service", [""])[0]
            access = grant(config, user, scopes)
            token = sign(key_pem, claims_for(service, user, access, ttl))
            with lock:
                answered.append({"user": user, "scopes": scopes, "time": time.time()})
            self._json({"token": token, "access_token": token, "expires_in": int(ttl)})

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--key", type=Path, required=True)
    parser.add_argument("--config", type=Path, required=True)
    args = parser.parse_args()
    serve(args.port, args.key.read_bytes(), json.loads(args.config.read_text()))
