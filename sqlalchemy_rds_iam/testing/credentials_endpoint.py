"""A container credentials endpoint on loopback: what Lambda (SnapStart), ECS and EKS Pod
Identity run beside a function, for tests and simulations.

It answers ``GET <path>`` with the JSON AWS's endpoints return (``AccessKeyId``,
``SecretAccessKey``, ``Token``, ``Expiration``, ``AccountId``) for the identity it serves,
and only with the right ``Authorization`` header (401 without one, 403 with a wrong one,
as the Lambda and EKS agents do). Tests queue failures (:meth:`fail`) and read what was
asked (:attr:`requests`). Give an identity the emulator knows (``Emulator.add_identity``)
and tokens signed with what it serves log in. Standard library only.
"""

from __future__ import annotations

import datetime
import hmac
import json
import secrets
import threading
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sqlalchemy_rds_iam.testing.info import Identity

__all__ = ["CredentialsEndpoint", "Request"]

#: The path Lambda's runtime API serves credentials on (any path works here).
LAMBDA_PATH = "/2021-04-23/credentials"


@dataclass(frozen=True)
class Request:
    """One request the endpoint got (never the authorization token itself)."""

    path: str
    authorized: bool
    status: int


class CredentialsEndpoint:
    """A threaded HTTP server (on 127.0.0.1 by default) handing out one identity's credentials.

    ``identity``: whose keys to serve (:meth:`serve` changes it); ``lifetime``: seconds
    from each request to the ``Expiration`` it reports (or pin ``expiration``);
    ``auth_token``: the ``Authorization`` value required (default: a random one);
    ``host``: the address to listen on (a non-loopback one shows what may not be asked).
    """

    def __init__(
        self,
        identity: Identity | None = None,
        *,
        lifetime: float = 6 * 3600,
        auth_token: str | None = None,
        path: str = LAMBDA_PATH,
        host: str = "127.0.0.1",
    ) -> None:
        self.identity = identity
        self.lifetime = lifetime
        self.expiration: datetime.datetime | None = None
        self.auth_token = auth_token if auth_token is not None else secrets.token_urlsafe(32)
        self.path = path
        self.requests: list[Request] = []
        self._answers: deque[tuple[int, bytes]] = deque()
        self._lock = threading.Lock()
        self.host = host
        self._server = ThreadingHTTPServer((host, 0), _handler(self))
        self._server.daemon_threads = True
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        name = self.identity.name if self.identity else None
        return f"<CredentialsEndpoint {self.url} serving {name!r}>"

    def __enter__(self) -> CredentialsEndpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def url(self) -> str:
        """``AWS_CONTAINER_CREDENTIALS_FULL_URI`` for this endpoint."""
        return f"http://{self.host}:{self.port}{self.path}"

    def env(self) -> dict[str, str]:
        """The variables a SnapStart function gets: the full URI and the authorization token."""
        return {
            "AWS_CONTAINER_CREDENTIALS_FULL_URI": self.url,
            "AWS_CONTAINER_AUTHORIZATION_TOKEN": self.auth_token,
        }

    def serve(self, identity: Identity, *, expiration: datetime.datetime | None = None) -> None:
        """Hand out ``identity``'s keys from now on (with this fixed expiry, if given)."""
        with self._lock:
            self.identity, self.expiration = identity, expiration

    def fail(self, status: int, body: bytes = b"", times: int = 1) -> None:
        """Answer the next ``times`` requests with ``status`` and ``body`` (e.g. not JSON)."""
        with self._lock:
            self._answers.extend([(status, body)] * times)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def _answer(self, path: str, authorization: str | None) -> tuple[int, bytes]:
        with self._lock:
            authorized = authorization is not None and hmac.compare_digest(
                authorization.encode(), self.auth_token.encode()
            )
            if self._answers:
                status, body = self._answers.popleft()
            elif authorization is None:
                status, body = 401, b'{"message": "missing authorization"}'
            elif not authorized:
                status, body = 403, b'{"message": "wrong authorization"}'
            elif path != self.path or self.identity is None:
                status, body = 404, b'{"message": "not found"}'
            else:
                status, body = 200, self._credentials(self.identity)
            self.requests.append(Request(path, authorized, status))
            return status, body

    def _credentials(self, identity: Identity) -> bytes:
        now = datetime.datetime.now(datetime.timezone.utc)
        expiry = self.expiration or now + datetime.timedelta(seconds=self.lifetime)
        return json.dumps({
            "AccessKeyId": identity.access_key_id,
            "SecretAccessKey": identity.secret_access_key,
            "Token": identity.session_token or "",
            "Expiration": expiry.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "AccountId": "123456789012",
        }).encode()


def _handler(endpoint: CredentialsEndpoint) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, body = endpoint._answer(self.path, self.headers.get("Authorization"))
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet: tests read ``requests``

    return Handler
