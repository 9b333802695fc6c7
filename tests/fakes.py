"""Shared test fakes: hostile database servers on loopback that record every byte they get,
the AWS environment, a closed port and a slow credential source (the end of this module).

Each :class:`RecordingServer` speaks just enough of one wire protocol to make a client
send its password, and keeps everything the client sent (after TLS, the decrypted bytes):
a test searches it for the token. The four kinds of server (:data:`KINDS`) present

* ``self-signed``: a certificate for ``localhost``/127.0.0.1 that no CA signed;
* ``wrong-host``: a certificate from the test CA, for another host name;
* ``plain``: no TLS at all (PostgreSQL answers ``N`` to ``SSLRequest``, MySQL's greeting
  lacks ``CLIENT_SSL``);
* ``valid``: a certificate from the test CA for ``localhost``/127.0.0.1: the positive
  control, where the token must arrive or the harness is blind.

PostgreSQL servers accept ``SSLRequest`` (answering ``S`` or ``N``), direct TLS (a
ClientHello first, ALPN ``postgresql``) and a plain startup message; they ask for a
cleartext password. MySQL servers greet with or without ``CLIENT_SSL``, upgrade when asked
and switch the client to ``mysql_clear_password``, as RDS does. Both then refuse the login.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import socket
import ssl
import struct
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

import sqlalchemy_rds_iam

if TYPE_CHECKING:
    from sqlalchemy_rds_iam.credentials import FrozenCredentials

__all__ = [
    "ASYNC_DRIVERS", "EXAMPLE_ACCESS_KEY", "EXAMPLE_SECRET_KEY", "KINDS", "TOKEN_MARKERS", "WHO",
    "Pki", "RecordingServer", "SlowSource", "closed_port", "driver_arguments", "hostile_servers",
    "login", "make_pki", "moto_server", "set_aws_env", "signed_tokens",
]

#: The four servers, in the order tests report them.
KINDS = ("self-signed", "wrong-host", "plain", "valid")
#: Byte strings found in every IAM token (and in nothing else a client sends).
TOKEN_MARKERS = (b"Action=connect", b"X-Amz-Signature")


@dataclass(frozen=True)
class Pki:
    """PEM files: the test CA, and one (certificate, key) pair per TLS-presenting kind."""

    ca: Path
    certs: dict[str, tuple[Path, Path]]


def make_pki(directory: Path) -> Pki:
    """A throwaway CA, a valid and a wrong-host certificate from it, and a self-signed one."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    start, end = now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=2)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
        path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder().subject_name(name("hostile-fakes test CA"))
        .issuer_name(name("hostile-fakes test CA")).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(start).not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False),
                       critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    ca_path = directory / "ca.pem"
    ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))

    local = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    other = [x509.DNSName("db.other.example")]
    certs: dict[str, tuple[Path, Path]] = {}
    for kind, names, self_signed in (("valid", local, False), ("wrong-host", other, False),
                                     ("self-signed", local, True)):
        key = ec.generate_private_key(ec.SECP256R1())
        subject = name(str(names[0].value))
        builder = (
            x509.CertificateBuilder().subject_name(subject)
            .issuer_name(subject if self_signed else ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        )
        if not self_signed:
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False)
        cert = builder.sign(key if self_signed else ca_key, hashes.SHA256())
        cert_path, key_path = directory / f"{kind}.crt", directory / f"{kind}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        write_key(key, key_path)
        certs[kind] = (cert_path, key_path)
    return Pki(ca_path, certs)


class _Closed(Exception):
    """The client went away."""


class _Conn:
    """One client connection: reads that record, optionally upgraded to TLS."""

    def __init__(self, sock: socket.socket, record: bytearray, lock: threading.Lock) -> None:
        self.sock: socket.socket = sock
        self._record, self._lock = record, lock
        self.tls = False

    def read(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise _Closed
            data += chunk
            with self._lock:
                self._record.extend(chunk)
        return data

    def peek(self) -> bytes:
        return self.sock.recv(1, socket.MSG_PEEK)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def upgrade(self, context: ssl.SSLContext) -> None:
        self.sock = context.wrap_socket(self.sock, server_side=True)
        self.tls = True


class RecordingServer:
    """A fake ``postgresql`` or ``mysql`` server of one kind, on 127.0.0.1 (or ``host``), in a
    thread."""

    def __init__(self, protocol: str, kind: str, pki: Pki, host: str = "127.0.0.1",
                 port: int = 0) -> None:
        self.protocol, self.kind = protocol, kind
        self.context: ssl.SSLContext | None = None
        if kind != "plain":
            self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.context.load_cert_chain(*map(str, pki.certs[kind]))
            if protocol == "postgresql":
                self.context.set_alpn_protocols(["postgresql"])
        self._sock = socket.socket()
        self._sock.bind((host, port))
        self._sock.listen(16)
        self._sock.settimeout(0.2)
        self.port: int = self._sock.getsockname()[1]
        self._record = bytearray()
        self._lock = threading.Lock()
        self._active = 0
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        return f"<{self.protocol} {self.kind} server on {self._sock.getsockname()[0]}:{self.port}>"

    # -- what tests read ---------------------------------------------------------------------

    def take(self, settle: float = 5.0) -> bytes:
        """Everything received since the last call, once no connection is still being served."""
        deadline = time.monotonic() + settle
        while time.monotonic() < deadline:
            with self._lock:
                if self._active == 0:
                    break
            time.sleep(0.005)
        with self._lock:
            data = bytes(self._record)
            self._record.clear()
        return data

    def got_token(self, data: bytes | None = None) -> bool:
        data = self.take() if data is None else data
        return any(marker in data for marker in TOKEN_MARKERS)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()

    # -- serving -----------------------------------------------------------------------------

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._sock.accept()
            except OSError:
                continue
            with self._lock:
                self._active += 1
                self.connections += 1
            threading.Thread(target=self._handle, args=(client,), daemon=True).start()

    def _handle(self, client: socket.socket) -> None:
        client.settimeout(5)
        conn = _Conn(client, self._record, self._lock)
        try:
            (self._postgresql if self.protocol == "postgresql" else self._mysql)(conn)
        except (_Closed, OSError, ssl.SSLError, struct.error):
            pass
        finally:
            with contextlib.suppress(OSError):
                conn.sock.close()
            with self._lock:
                self._active -= 1

    def _postgresql(self, conn: _Conn) -> None:
        if conn.peek() == b"\x16":  # a TLS ClientHello first: direct TLS (PostgreSQL 17)
            if self.context is None:
                return
            conn.upgrade(self.context)
        while True:
            length, code = struct.unpack("!ii", conn.read(8))
            body = conn.read(length - 8)
            if code in (80877103, 80877104):  # SSLRequest, GSSENCRequest
                if code == 80877103 and self.context is not None and not conn.tls:
                    conn.send(b"S")
                    conn.upgrade(self.context)
                else:
                    conn.send(b"N")
                continue
            if code != 196608:  # not a v3 startup (a cancel request, say)
                return
            del body
            break
        conn.send(b"R" + struct.pack("!ii", 8, 3))  # AuthenticationCleartextPassword
        kind = conn.read(1)
        (length,) = struct.unpack("!i", conn.read(4))
        conn.read(length - 4)
        if kind == b"p":
            fields = b"SFATAL\x00C28P01\x00Mpassword authentication failed (fake server)\x00\x00"
            conn.send(b"E" + struct.pack("!i", len(fields) + 4) + fields)

    def _mysql(self, conn: _Conn) -> None:
        caps = 0x1 | 0x8 | 0x200 | 0x8000 | 0x80000  # long pw, db, 4.1, secure conn, plugin auth
        if self.context is not None:
            caps |= 0x800  # CLIENT_SSL
        salt = b"abcdefghijklmnopqrst"
        greeting = (b"\x0a8.0.36-fake\x00" + struct.pack("<I", 7) + salt[:8] + b"\x00"
                    + struct.pack("<H", caps & 0xFFFF) + b"\x21" + struct.pack("<H", 2)
                    + struct.pack("<H", caps >> 16) + bytes([21]) + b"\x00" * 10 + salt[8:]
                    + b"\x00mysql_native_password\x00")
        conn.send(_mysql_packet(0, greeting))
        seq, payload = _mysql_read(conn)
        flags = struct.unpack("<I", payload[:4])[0] if len(payload) >= 4 else 0
        if len(payload) == 32 and flags & 0x800:  # SSLRequest: upgrade, then the real response
            if self.context is None:
                return
            conn.upgrade(self.context)
            seq, payload = _mysql_read(conn)
        conn.send(_mysql_packet(seq + 1, b"\xfemysql_clear_password\x00"))
        seq, payload = _mysql_read(conn)
        conn.send(_mysql_packet(seq + 1, b"\xff" + struct.pack("<H", 1045)
                                + b"#28000Access denied (fake server)"))


def _mysql_packet(seq: int, payload: bytes) -> bytes:
    return struct.pack("<I", len(payload))[:3] + bytes([seq & 0xFF]) + payload


def _mysql_read(conn: _Conn) -> tuple[int, bytes]:
    header = conn.read(4)
    length = header[0] | header[1] << 8 | header[2] << 16
    return header[3], conn.read(length)


@contextlib.contextmanager
def hostile_servers(protocol: str, pki: Pki) -> Iterator[dict[str, RecordingServer]]:
    """One server of each kind for ``protocol``, closed afterwards."""
    servers = {kind: RecordingServer(protocol, kind, pki) for kind in KINDS}
    try:
        yield servers
    finally:
        for server in servers.values():
            server.close()


def driver_arguments(engine: Any, cparams: dict[str, Any] | None = None,
                     connector: Any = None) -> dict[str, Any]:
    """The keywords the IAM listener hands the driver for one connect, without connecting.

    The listener makes the connection itself (``DriverSpec.connect``, mostly
    ``dialect.connect``); for the length of one call that is replaced by a recorder, so offline tests see exactly what a driver would.
    ``connector``: a listener of the test's own, instead of the engine's.
    """
    import sqlalchemy_rds_iam

    sync = getattr(engine, "sync_engine", engine)
    if cparams is None:
        cparams = dict(sync.dialect.create_connect_args(sync.url)[1])
    seen: dict[str, Any] = {}

    def record(*cargs: Any, **kwargs: Any) -> object:
        seen.update(kwargs)
        return object()

    listener = connector or sqlalchemy_rds_iam.connector(engine)
    real = listener.target
    listener.target = real.replace(
        spec=real.spec.replace(connect=lambda _d, a, kw: record(*a, **kw)))
    try:
        listener(sync.dialect, None, [], cparams)
    finally:
        listener.target = real
    return seen


# -- AWS environment, ports, credential sources ----------------------------------------------

#: AWS's documented example key pair: signs offline, is accepted by no real account.
EXAMPLE_ACCESS_KEY = "AKIDEXAMPLE"
EXAMPLE_SECRET_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"


def set_aws_env(monkeypatch: Any, access_key: str = EXAMPLE_ACCESS_KEY,
                secret_key: str = EXAMPLE_SECRET_KEY) -> None:
    """Long-lived credentials in the environment (the ``aws_env`` fixture of conftest.py)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret_key)


def closed_port() -> int:
    """A loopback port nothing listens on: a connect there is refused at once."""
    from sqlalchemy_rds_iam.testing.processes import free_port

    return free_port()


@contextlib.contextmanager
def moto_server(monkeypatch: Any, *services: str) -> Iterator[str]:
    """moto in server mode on loopback (the real HTTP APIs, no network), found by botocore
    through ``AWS_ENDPOINT_URL_<SERVICE>`` for each of ``services`` (e.g. ``"sts"``)."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        for service in services:
            monkeypatch.setenv(f"AWS_ENDPOINT_URL_{service.upper()}", endpoint)
        yield endpoint
    finally:
        server.stop()


class SlowSource:
    """A credential source with the real interface whose loading takes ``delay`` seconds.

    Stands in for STS / IMDS / SSO network I/O; ``calls`` counts the loads.
    """

    def __init__(self, delay: float = 0.0, credentials: FrozenCredentials | None = None,
                 region: str | None = "us-east-1", name: str = "slow fake") -> None:
        from sqlalchemy_rds_iam.credentials import FrozenCredentials

        self.delay = delay
        self.calls = 0
        self.credentials = credentials or FrozenCredentials(
            EXAMPLE_ACCESS_KEY, EXAMPLE_SECRET_KEY, None, None)
        self.region_name = region
        self.name = name

    def frozen(self) -> FrozenCredentials:
        self.calls += 1
        time.sleep(self.delay)
        return self.credentials

    def region(self) -> str | None:
        return self.region_name

    def describe(self) -> str:
        return self.name


def signed_tokens(connector: Any, tokens: list[str] | None = None) -> list[str]:
    """Record every token ``connector`` signs from now on (into ``tokens``)."""
    tokens = [] if tokens is None else tokens
    sign = connector._sign

    def spy() -> Any:
        signed = sign()
        tokens.append(signed.token)
        return signed

    connector._sign = spy
    return tokens


#: What each database family calls the session's user.
WHO = {"postgresql": "SELECT current_user", "mysql": "SELECT SUBSTRING_INDEX(USER(), '@', 1)"}
#: Drivers whose URLs need an async engine.
ASYNC_DRIVERS = frozenset({"asyncpg", "psycopg_async", "aiomysql", "asyncmy"})


def login(url: str, tokens: list[str] | None = None, *, sql: str | None = None,
          attach: Mapping[str, Any] | None = None, **kw: Any) -> Any:
    """Connect once through SQLAlchemy (an async engine for async drivers) and return what
    ``sql`` selects: by default as whom the session runs; ``sql=""`` only connects.

    ``attach``: options for ``sqlalchemy_rds_iam.attach()`` on the new engine before it
    connects (for a URL without ``?plugin=rds_iam``). ``kw`` goes to ``create_engine``
    (``connect_args``...). The tokens signed are added to ``tokens``. Raises what
    ``create_engine``, ``attach()`` or the connect raise; the engine is disposed of.
    """

    def prepare(engine: Any) -> None:
        listener = (sqlalchemy_rds_iam.attach(engine, **attach) if attach is not None
                    else sqlalchemy_rds_iam.connector(engine))
        signed_tokens(listener, tokens)

    if sa.make_url(url).get_driver_name() in ASYNC_DRIVERS:
        import asyncio

        from sqlalchemy.ext.asyncio import create_async_engine

        async def run() -> Any:
            engine = create_async_engine(url, poolclass=NullPool, **kw)
            try:
                prepare(engine)
                async with engine.connect() as conn:
                    query = WHO[engine.dialect.name] if sql is None else sql
                    return (await conn.execute(sa.text(query))).scalar() if query else None
            finally:
                await engine.dispose()

        return asyncio.run(run())
    engine = sa.create_engine(url, poolclass=NullPool, **kw)
    try:
        prepare(engine)
        with engine.connect() as conn:
            query = WHO[engine.dialect.name] if sql is None else sql
            return conn.execute(sa.text(query)).scalar() if query else None
    finally:
        engine.dispose()
