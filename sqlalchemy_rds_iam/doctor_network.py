"""The doctor's network steps: DNS, TCP, the database's own STARTTLS, the certificate.

Also :class:`State` and :class:`Failed`, the two types every step shares: they live in this,
the lowest of the doctor's modules, so ``doctor``, ``doctor_login`` and this module share
them without an import cycle (``doctor`` re-exports them).
"""

from __future__ import annotations

import socket
import ssl
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .credentials import FrozenCredentials
    from .plugin import IamConnector
    from .target import Target

__all__ = ["Failed", "State", "step_certificate", "step_dns", "step_tcp", "step_tls"]


class Failed(Exception):
    """Raised by a step function: what went wrong and what to do about it."""

    def __init__(self, detail: str, fix: str, step: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.fix = fix
        self.step = step  # the step whose check this is, when another step's run found it


@dataclass
class State:
    """What earlier steps found, for later ones (one per ``diagnose`` call)."""

    text: str
    timeout: float
    whoami: bool
    url: Any = None
    engine: Any = None
    connector: IamConnector | None = None
    region: str = ""
    credentials: FrozenCredentials | None = None
    sock: socket.socket | None = None

    @property
    def iam(self) -> IamConnector:
        assert self.connector is not None  # the options step set it
        return self.connector

    @property
    def target(self) -> Target:
        """What the engine connects to, as the plugin resolved it (the options step's)."""
        return self.iam.target


def _address(state: State) -> tuple[str, int]:
    """Where the driver will connect: the URL's host and port (not iam_host/iam_port)."""
    return state.target.address


def step_dns(state: State) -> str:
    host, port = _address(state)
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:  # UnicodeError: not a valid (IDNA) name
        raise Failed(
            f"cannot resolve {host}: {exc}",
            "check the endpoint name; inside a VPC, check the DNS resolver",
        ) from None
    return f"{host} -> {', '.join(sorted({str(a[4][0]) for a in addresses}))}"


def step_tcp(state: State) -> str:
    host, port = _address(state)
    try:
        state.sock = socket.create_connection((host, port), timeout=state.timeout)
    except OSError as exc:
        raise Failed(
            f"cannot connect to {host}:{port}: {exc}",
            "check the port, security groups / network ACLs (inbound from this host), "
            "and that the database is running",
        ) from None
    return f"connected to {host}:{port}"


def _pg_starttls(sock: socket.socket) -> bool:
    """Send PostgreSQL's SSLRequest; True if the server agrees to TLS."""
    sock.sendall(struct.pack("!II", 8, 80877103))
    return sock.recv(1) == b"S"


def _mysql_starttls(sock: socket.socket) -> bool:
    """Read the MySQL greeting; if it offers TLS, send the SSL request packet; True if so."""
    header = sock.recv(4)
    length = int.from_bytes(header[:3], "little")
    payload = b""
    while len(payload) < length:
        chunk = sock.recv(length - len(payload))
        if not chunk:
            break
        payload += chunk
    if not payload or payload[0] != 10:  # protocol v10; 0xff is an error packet
        return False
    end = payload.index(b"\0", 1)
    caps_offset = end + 1 + 4 + 8 + 1
    capabilities = int.from_bytes(payload[caps_offset : caps_offset + 2], "little")
    client_ssl, protocol_41, secure_auth = 0x800, 0x200, 0x8000
    if not capabilities & client_ssl:
        return False
    flags = client_ssl | protocol_41 | secure_auth
    request = struct.pack("<IIB23x", flags, 1 << 24, 33)
    sock.sendall(len(request).to_bytes(3, "little") + b"\x01" + request)
    return True


_STARTTLS: dict[str, Callable[[socket.socket], bool]] = {
    "postgresql": _pg_starttls,
    "mysql": _mysql_starttls,
}


def step_tls(state: State) -> str:
    """STARTTLS the database's way; the handshake is the certificate step's."""
    assert state.sock is not None
    state.sock.settimeout(state.timeout)
    try:
        offered = _STARTTLS[state.target.spec.family](state.sock)
    except (OSError, ValueError) as exc:
        raise Failed(f"TLS negotiation failed: {exc}", "is this the database port?") from None
    if not offered:
        raise Failed(
            "the server does not offer TLS; the token would travel in clear text",
            "enable TLS on the server (RDS always offers it: is this really RDS?)",
        )
    return "the server offers TLS"


def step_certificate(state: State) -> str:
    from .tls import ssl_context

    assert state.sock is not None
    target = state.target
    host, _ = _address(state)
    context = ssl_context(target.ca_bundle, target.tls_mode)
    try:
        with context.wrap_socket(state.sock, server_hostname=host) as tls:
            version = tls.version()
    except ssl.SSLCertVerificationError as exc:
        raise Failed(
            f"the server's certificate does not verify against {target.ca_bundle}: "
            f"{exc.verify_message}",
            "the default trust store follows the endpoint the token is signed for (RDS "
            "bundle of its partition; Amazon roots for RDS Proxy and DSQL; both for other "
            "names): behind a CNAME or tunnel give iam_host=<the AWS endpoint name>; else "
            "iam_ca_bundle=<the right PEM>, `sqlalchemy-rds-iam ca update`, or "
            "iam_tls=verify-ca when the tunnel's name is not in the certificate",
        ) from None
    except (ssl.SSLError, OSError) as exc:
        raise Failed(f"TLS handshake failed: {exc}", "check the server's TLS settings") from None
    return f"{version}, certificate verified ({target.tls_mode}) against {target.ca_bundle}"
