"""The driver table, offline: the exact arguments each of the nine drivers receives.

For every row: the TLS defaults for ``verify-full`` and ``verify-ca``, the user's own TLS
settings winning, every spelling that could send the token unencrypted refused (at
``create_engine``/``attach`` and again at connect), and idempotence on the dict
SQLAlchemy reuses. Also: no plain text reaches a fake MySQL server that offers no TLS
(aiomysql, mysqlclient), and async signing does not stall the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import struct
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

import sqlalchemy_rds_iam
from sqlalchemy_rds_iam import InsecureConnectionError, UnsupportedDriverError
from sqlalchemy_rds_iam.drivers import DRIVERS, driver_for
from sqlalchemy_rds_iam.drivers import aiomysql as aiomysql_module
from sqlalchemy_rds_iam.drivers import mysql as mysql_module
from sqlalchemy_rds_iam.drivers.aiomysql import connect_aiomysql_requiring_tls
from sqlalchemy_rds_iam.options import parse_options
from sqlalchemy_rds_iam.plugin import IamConnector
from sqlalchemy_rds_iam.tls import ssl_context
from tests.fakes import SlowSource, closed_port, driver_arguments

RDS = "db.cluster-abc123.us-east-1.rds.amazonaws.com"
ASYNC = {name for name, spec in DRIVERS.items() if spec.is_async}


def url_for(name: str, query: str = "plugin=rds_iam") -> str:
    spec = DRIVERS[name]
    return f"{spec.family}+{name}://iamuser@{RDS}/app" + (f"?{query}" if query else "")


def make_engine(url: str, **kwargs: Any) -> sa.Engine:
    """A sync Engine for sync drivers, the AsyncEngine's sync_engine for async ones."""
    if sa.make_url(url).get_driver_name() in ASYNC:
        return create_async_engine(url, **kwargs).sync_engine
    return sa.create_engine(url, **kwargs)


def prepared(engine: sa.Engine, connect_args: dict[str, Any] | None = None) -> dict[str, Any]:
    """cparams as do_connect sees them, after the listener's preparation (no token)."""
    cparams = dict(engine.dialect.create_connect_args(engine.url)[1])
    cparams.update(connect_args or {})
    sqlalchemy_rds_iam.connector(engine).target.check(cparams)
    return cparams


def expected_tls(name: str, ca: str, mode: str) -> dict[str, Any]:
    """What each driver gets by default: the facts of the table, written out by hand."""
    full = mode == "verify-full"
    import psycopg
    import psycopg2.extensions

    def libpq(version: int) -> dict[str, Any]:
        # hostaddr='': PGHOSTADDR cannot move libpq; sslkeylogfile='' (libpq 18+): nor can a
        # service file turn on a key log.
        base = {"sslmode": mode, "sslrootcert": ca, "gssencmode": "disable", "hostaddr": ""}
        return {**base, "sslkeylogfile": ""} if version >= 180000 else base

    table: dict[str, dict[str, Any]] = {
        "psycopg2": libpq(psycopg2.extensions.libpq_version()),
        "psycopg": libpq(psycopg.pq.version()),
        "psycopg_async": libpq(psycopg.pq.version()),
        "pg8000": {"ssl_context": ssl_context(ca, mode)},
        "asyncpg": {"ssl": ssl_context(ca, mode)},
        "pymysql": {"ssl": ssl_context(ca, mode)},  # not PyMySQL's own: it logs keys
        "mysqldb": {"ssl": {"ca": ca}, "ssl_mode": "VERIFY_IDENTITY" if full else "VERIFY_CA"},
        "mysqlconnector": {"ssl_ca": ca, "ssl_verify_cert": True, "ssl_verify_identity": full,
                           "auth_plugin": "mysql_clear_password"},
        "aiomysql": {"ssl": ssl_context(ca, mode),
                     "async_creator_fn": connect_aiomysql_requiring_tls},
        "asyncmy": {"ssl": ssl_context(ca, mode)},
    }
    return table[name]


# -- the table -------------------------------------------------------------------------------


def test_the_table_has_the_nine_drivers_sync_and_async() -> None:
    assert sorted(DRIVERS) == sorted([
        "psycopg2", "psycopg", "psycopg_async", "pg8000", "asyncpg",
        "pymysql", "mysqldb", "mysqlconnector", "aiomysql", "asyncmy",
    ])
    assert ASYNC == {"psycopg_async", "asyncpg", "aiomysql", "asyncmy"}


@pytest.mark.parametrize("name", sorted(DRIVERS))
def test_each_row_matches_its_sqlalchemy_dialect(name: str) -> None:
    engine = make_engine(url_for(name, ""))
    dialect = engine.dialect
    assert driver_for(dialect.name, dialect.driver, is_async=dialect.is_async) is DRIVERS[name]
    assert DRIVERS[name].default_port == {"postgresql": 5432, "mysql": 3306}[dialect.name]


def test_mariadb_urls_use_the_mysql_rows() -> None:
    assert driver_for("mariadb", "pymysql") is DRIVERS["pymysql"]


def test_unsupported_driver_names_the_supported_ones() -> None:
    with pytest.raises(UnsupportedDriverError) as info:
        driver_for("postgresql", "psycopg2cffi")
    message = str(info.value)
    for spec in DRIVERS.values():
        assert f"{spec.family}+{spec.name}" in message
    with pytest.raises(UnsupportedDriverError, match="mysql\\+pymysql"):
        driver_for("postgresql", "pymysql")  # a real driver, of the wrong family


def test_importing_the_table_imports_no_driver() -> None:
    import subprocess
    import sys

    drivers = ["psycopg2", "psycopg", "pg8000", "asyncpg", "pymysql", "MySQLdb", "mysql",
               "aiomysql", "asyncmy", "botocore"]
    code = ("import sys, sqlalchemy_rds_iam, sqlalchemy_rds_iam.drivers; "
            f"print([m for m in {drivers!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- defaults, per driver and mode --------------------------------------------------------------


@pytest.mark.parametrize("mode", ["verify-full", "verify-ca"])
@pytest.mark.parametrize("name", sorted(DRIVERS))
def test_default_tls_arguments(name: str, mode: str) -> None:
    engine = make_engine(url_for(name, f"plugin=rds_iam&iam_tls={mode}"))
    before = dict(engine.dialect.create_connect_args(engine.url)[1])
    after = prepared(engine)
    ca = sqlalchemy_rds_iam.connector(engine).target.ca_bundle
    placed = {"port": DRIVERS[name].default_port}  # always explicit: PGPORT & co. cannot move it
    assert after == {**before, **placed, **expected_tls(name, ca, mode)}


@pytest.mark.parametrize("name", sorted(DRIVERS))
def test_idempotent_on_the_reused_dict(name: str) -> None:
    ca = sqlalchemy_rds_iam.cabundle.SHIPPED_CA_BUNDLE
    engine = make_engine(url_for(name, f"plugin=rds_iam&ssl_ca={ca}")
                         if DRIVERS[name].family == "mysql" else url_for(name))
    connector = sqlalchemy_rds_iam.connector(engine)
    cparams = dict(engine.dialect.create_connect_args(engine.url)[1])
    user_ssl = cparams.get("ssl")
    snapshot = dict(user_ssl) if isinstance(user_ssl, dict) else None
    connector.target.check(cparams)
    first = dict(cparams)
    for _ in range(3):
        connector.target.check(cparams)
    assert cparams == first
    if snapshot is not None:  # a nested dict is replaced, never mutated in place
        assert user_ssl == snapshot


def test_contexts_are_shared_not_rebuilt() -> None:
    a = prepared(make_engine(url_for("asyncpg")))["ssl"]
    b = prepared(make_engine(url_for("aiomysql")))["ssl"]
    assert a is b
    assert a.check_hostname and a.verify_mode is ssl.CERT_REQUIRED
    c = prepared(make_engine(url_for("asyncmy", "plugin=rds_iam&iam_tls=verify-ca")))["ssl"]
    assert not c.check_hostname and c.verify_mode is ssl.CERT_REQUIRED


# -- the user's settings win --------------------------------------------------------------------

MY_CTX = ssl.create_default_context()
CA = str(sqlalchemy_rds_iam.cabundle.SHIPPED_CA_BUNDLE)

USER_SETTINGS: list[tuple[str, str, dict[str, Any], dict[str, Any]]] = [
    # (driver, url query, connect_args, expected subset of cparams)
    ("psycopg2", f"sslmode=verify-ca&sslrootcert={CA}", {},
     {"sslmode": "verify-ca", "sslrootcert": CA}),
    ("psycopg", "sslmode=verify-ca", {}, {"sslmode": "verify-ca"}),
    ("psycopg_async", "", {"sslrootcert": "system"}, {"sslrootcert": "system"}),
    ("pg8000", "", {"ssl_context": MY_CTX}, {"ssl_context": MY_CTX}),
    ("pg8000", "ssl_context=true", {}, {"ssl_context": "OURS-verify-full"}),
    ("asyncpg", "", {"ssl": MY_CTX}, {"ssl": MY_CTX}),
    ("asyncpg", "ssl=verify-ca", {}, {"ssl": "OURS-verify-ca"}),
    ("pymysql", f"ssl_ca={CA}", {}, {"ssl": "OURS-verify-full"}),
    ("pymysql", "", {"ssl": MY_CTX}, {"ssl": MY_CTX}),
    ("pymysql", "", {"ssl_verify_identity": False}, {"ssl": "OURS-verify-ca"}),
    ("mysqldb", f"ssl_ca={CA}&ssl_mode=VERIFY_CA", {},
     {"ssl": {"ca": CA}, "ssl_mode": "VERIFY_CA"}),
    ("mysqldb", "", {"ssl": {"capath": "/etc/ssl/certs"}}, {"ssl": {"capath": "/etc/ssl/certs"}}),
    ("mysqlconnector", f"ssl_ca={CA}", {"ssl_verify_identity": False},
     {"ssl_ca": CA, "ssl_verify_identity": False}),
    ("aiomysql", "", {"ssl": MY_CTX}, {"ssl": MY_CTX}),
    ("asyncmy", "", {"ssl": MY_CTX}, {"ssl": MY_CTX}),
    ("asyncmy", "ssl_check_hostname=false", {}, {"ssl": "OURS-verify-ca"}),
]


@pytest.mark.parametrize(("name", "query", "connect_args", "expected"), USER_SETTINGS)
def test_users_tls_settings_win(name: str, query: str, connect_args: dict[str, Any],
                                expected: dict[str, Any]) -> None:
    url = url_for(name, "plugin=rds_iam" + (f"&{query}" if query else ""))
    engine = make_engine(url, connect_args=connect_args)
    args = prepared(engine, connect_args)
    ca = sqlalchemy_rds_iam.connector(engine).target.ca_bundle
    for key, value in expected.items():
        if isinstance(value, str) and value.startswith("OURS-"):
            value = ssl_context(ca, value.removeprefix("OURS-"))
        assert args[key] == value, key


def test_an_ssl_dict_with_a_client_certificate_becomes_one_cached_context(tmp_path: Path) -> None:
    from sqlalchemy_rds_iam.drivers.tlsargs import _context_from_ssl_dict

    ca = str(sqlalchemy_rds_iam.cabundle.SHIPPED_CA_BUNDLE)
    one = _context_from_ssl_dict({"ca": ca, "check_hostname": False}, "/unused", "verify-full")
    assert one is ssl_context(ca, "verify-ca")
    with pytest.raises(sqlalchemy_rds_iam.ConfigurationError, match="SSLContext"):
        _context_from_ssl_dict({"ca": ca, "bogus": 1}, ca, "verify-full")
    with pytest.raises(sqlalchemy_rds_iam.ConfigurationError, match="cannot build"):
        _context_from_ssl_dict({"ca": ca, "cert": str(tmp_path / "nope.pem")}, ca, "verify-ca")


# -- refusing plain text: every spelling ---------------------------------------------------------

INSECURE: list[tuple[str, str, dict[str, Any]]] = [
    ("psycopg2", "sslmode=require&sslrootcert=/my/ca.pem", {}),
    ("asyncpg", "ssl=require", {}),
    ("mysqldb", f"ssl_ca={CA}&ssl_mode=REQUIRED", {}),
    ("psycopg2", "sslmode=disable", {}),
    ("psycopg2", "sslmode=prefer", {}),
    ("psycopg2", "", {"sslmode": "allow"}),
    ("psycopg", "sslmode=Disable", {}),
    ("psycopg_async", "sslmode=prefer", {}),
    ("pg8000", "", {"ssl_context": False}),
    ("pg8000", "ssl_context=false", {}),
    ("pg8000", "ssl_context=0", {}),
    ("asyncpg", "ssl=disable", {}),
    ("asyncpg", "ssl=prefer", {}),
    ("asyncpg", "ssl=allow", {}),
    ("asyncpg", "ssl=false", {}),
    ("asyncpg", "", {"ssl": False}),
    ("asyncpg", "sslmode=disable", {}),
    ("pymysql", "ssl_disabled=true", {}),
    ("pymysql", "ssl_disabled=false", {}),  # a non-empty string: PyMySQL disables TLS
    ("pymysql", "", {"ssl_disabled": True}),
    ("pymysql", "", {"ssl": False}),
    ("pymysql", "ssl=false", {}),
    ("mysqldb", "ssl_mode=DISABLED", {}),
    ("mysqldb", "ssl_mode=PREFERRED", {}),
    ("mysqldb", "ssl_mode=preferred", {}),
    ("mysqldb", "", {"ssl": False}),
    ("mysqlconnector", "ssl_disabled=false", {}),
    ("mysqlconnector", "", {"ssl_disabled": True}),
    ("mysqlconnector", "ssl_verify_cert=false", {}),
    ("mysqlconnector", "", {"ssl_verify_cert": "no"}),
    ("aiomysql", "", {"ssl": False}),
    ("aiomysql", "ssl=false", {}),
    ("aiomysql", "", {"ssl": "true-ish"}),
    ("aiomysql", "", {"async_creator_fn": lambda **kw: None}),
    ("asyncmy", "", {"ssl": False}),
    ("asyncmy", "ssl=0", {}),
]


@pytest.mark.parametrize(("name", "query", "connect_args"), INSECURE)
def test_insecure_spellings_are_refused_by_create_engine(name: str, query: str,
                                                         connect_args: dict[str, Any]) -> None:
    url = url_for(name, "plugin=rds_iam" + (f"&{query}" if query else ""))
    with pytest.raises(InsecureConnectionError, match="refusing to send an IAM token"):
        make_engine(url, connect_args=connect_args)


@pytest.mark.parametrize(("name", "query", "connect_args"), INSECURE)
def test_insecure_spellings_are_refused_by_attach(name: str, query: str,
                                                  connect_args: dict[str, Any]) -> None:
    """attach() sees the engine's connect_args too, not only its URL."""
    engine = make_engine(url_for(name, query), connect_args=connect_args)
    with pytest.raises(InsecureConnectionError):
        sqlalchemy_rds_iam.attach(engine)
    with pytest.raises(sqlalchemy_rds_iam.ConfigurationError, match="no IAM authentication"):
        sqlalchemy_rds_iam.connector(engine)


@pytest.mark.parametrize("name", sorted(DRIVERS))
def test_refused_again_at_connect_before_any_token(name: str) -> None:
    """A do_connect listener that runs earlier could still weaken the arguments."""
    engine = make_engine(url_for(name))
    connector = sqlalchemy_rds_iam.connector(engine)
    cparams = prepared(engine)
    key, value = {
        "psycopg2": ("sslmode", "disable"), "psycopg": ("sslmode", "prefer"),
        "psycopg_async": ("sslmode", "allow"), "pg8000": ("ssl_context", False),
        "asyncpg": ("ssl", "prefer"), "pymysql": ("ssl_disabled", True),
        "mysqldb": ("ssl_mode", "DISABLED"), "mysqlconnector": ("ssl_verify_cert", False),
        "aiomysql": ("async_creator_fn", print), "asyncmy": ("ssl", False),
    }[name]
    cparams[key] = value
    with pytest.raises(InsecureConnectionError):
        connector(engine.dialect, None, [], cparams)
    assert DRIVERS[name].password_key not in cparams


# -- passwords and rows at connect ---------------------------------------------------------------


def test_sync_drivers_get_the_token_in_their_password_keyword() -> None:
    for name, spec in DRIVERS.items():
        if spec.is_async:
            continue
        engine = make_engine(url_for(name, ""))
        connector = IamConnector(engine.url, engine.dialect, parse_options(),
                                 source=SlowSource())
        cparams = dict(engine.dialect.create_connect_args(engine.url)[1])
        received = driver_arguments(engine, cparams, connector)
        assert received[spec.password_key].startswith(f"{RDS}:{spec.default_port}/?Action=connect")
        assert spec.password_key not in cparams  # not left behind in SQLAlchemy's dict


def test_mysqldb_token_goes_to_passwd_which_wins_over_password() -> None:
    assert DRIVERS["mysqldb"].password_key == "passwd"


def test_psycopg_async_engine_signs_off_the_loop_row() -> None:
    engine = make_engine(url_for("psycopg_async"))
    connector = sqlalchemy_rds_iam.connector(engine)
    assert engine.dialect.is_async
    connector.source = SlowSource()
    connector.cache.get(connector.key(), connector._sign)  # warm: no await needed
    received = driver_arguments(engine, connector=connector)
    assert connector.target.spec is DRIVERS["psycopg_async"]
    assert received["password"].startswith(RDS)


@pytest.mark.parametrize(("info", "oracle"), [
    ("3.3.20", False), ("10.11.6", False), ("11.4.2", False),
    ("5.7.44", True), ("8.0.36", True), ("9.1.0", True), ("", False),
])
def test_mysqlclient_library_detection(info: str, oracle: bool) -> None:
    assert mysql_module._oracle_client(info) is oracle


def test_mysqlclient_on_libmysqlclient_enables_cleartext_per_connection(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(mysql_module, "_mysqldb_needs_cleartext_switch", lambda: True)
    args = prepared(make_engine(url_for("mysqldb")))
    text = Path(args["read_default_file"]).read_text()
    assert text == "[client]\nenable-cleartext-plugin\n"
    mine_file = tmp_path / "my.cnf"
    mine_file.write_text("[client]\nenable-cleartext-plugin\n")
    mine = prepared(make_engine(url_for("mysqldb")), {"read_default_file": str(mine_file)})
    assert mine["read_default_file"] == str(mine_file)


def test_mysqlclient_on_mariadb_connector_c_needs_no_switch() -> None:
    import MySQLdb._mysql

    if mysql_module._oracle_client(MySQLdb._mysql.get_client_info()):
        pytest.skip("this mysqlclient is built on Oracle's libmysqlclient")
    assert "read_default_file" not in prepared(make_engine(url_for("mysqldb")))


# -- a fake MySQL server that offers no TLS: the token must never reach it ----------------------


def _packet(seq: int, payload: bytes) -> bytes:
    return struct.pack("<I", len(payload))[:3] + bytes([seq]) + payload


def _greeting_without_ssl() -> bytes:
    """A MySQL 8 handshake v10 whose capability flags lack CLIENT_SSL (0x800)."""
    caps = 0x1 | 0x8 | 0x200 | 0x8000 | 0x80000
    salt = b"abcdefghijklmnopqrst"
    payload = (b"\x0a8.0.36\x00" + struct.pack("<I", 7) + salt[:8] + b"\x00"
               + struct.pack("<H", caps & 0xFFFF) + b"\x21" + struct.pack("<H", 2)
               + struct.pack("<H", caps >> 16) + bytes([21]) + b"\x00" * 10 + salt[8:]
               + b"\x00mysql_native_password\x00")
    return _packet(0, payload)


class PlainMySQLServer:
    """Accepts connections on 127.0.0.1, greets without TLS, asks for a cleartext password.

    Everything clients send is kept in ``received``, to look for the token in it.
    """

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.received = b""
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            with conn:
                conn.settimeout(2)
                conn.sendall(_greeting_without_ssl())
                with contextlib.suppress(OSError):
                    data = conn.recv(65536)
                    self.received += data
                    if data:  # ask for the password in clear text, as RDS does
                        conn.sendall(_packet(2, b"\xfemysql_clear_password\x00"))
                        self.received += conn.recv(65536)
                        conn.sendall(_packet(4, b"\xff\x15\x04#28000Access denied (fake)"))

    def __enter__(self) -> PlainMySQLServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


@pytest.fixture
def plain_server() -> Iterator[PlainMySQLServer]:
    with PlainMySQLServer() as server:
        yield server



def _local_url(name: str, port: int) -> str:
    return f"mysql+{name}://iamuser@127.0.0.1:{port}/app?plugin=rds_iam&aws_region=us-east-1"


@pytest.mark.usefixtures("aws_env")
def test_aiomysql_never_sends_the_token_to_a_server_without_tls(
        plain_server: PlainMySQLServer) -> None:
    async def attempt() -> str:
        engine = create_async_engine(_local_url("aiomysql", plain_server.port),
                                     poolclass=NullPool)
        try:
            async with engine.connect():
                pass
        except Exception as exc:
            return str(exc)
        finally:
            await engine.dispose()
        return "connected"

    message = asyncio.run(attempt())
    assert "does not offer TLS" in message
    assert plain_server.connections == 1
    assert b"Action=connect" not in plain_server.received
    assert plain_server.received == b""  # not even the handshake response


def test_control_plain_aiomysql_does_leak_to_that_server(plain_server: PlainMySQLServer) -> None:
    """Proves the fake server can see a leak: aiomysql alone, with an SSLContext, leaks."""
    import aiomysql

    async def attempt() -> None:
        with contextlib.suppress(Exception):
            await aiomysql.connect(host="127.0.0.1", port=plain_server.port, user="iamuser",
                                   password="Action=connect-TOKEN", ssl=ssl_context(
                                       str(sqlalchemy_rds_iam.cabundle.SHIPPED_CA_BUNDLE),
                                       "verify-full"))

    asyncio.run(attempt())
    assert b"Action=connect-TOKEN" in plain_server.received


def test_the_guard_connects_through_the_tls_only_class() -> None:
    cls = aiomysql_module._aiomysql_connection_class()
    import aiomysql

    assert issubclass(cls, aiomysql.Connection)
    assert cls is aiomysql_module._aiomysql_connection_class()  # built once


@pytest.mark.usefixtures("aws_env")
def test_mysqlclient_never_falls_back_to_plain_text(plain_server: PlainMySQLServer) -> None:
    engine = sa.create_engine(_local_url("mysqldb", plain_server.port), poolclass=NullPool)
    with pytest.raises(sa.exc.OperationalError, match=r"SSL|TLS"):
        engine.connect()
    assert plain_server.connections == 1
    assert b"Action=connect" not in plain_server.received


@pytest.mark.usefixtures("aws_env")
@pytest.mark.parametrize("name", ["pymysql", "mysqlconnector", "asyncmy"])
def test_other_mysql_drivers_never_send_the_token_without_tls(
        name: str, plain_server: PlainMySQLServer) -> None:
    url = _local_url(name, plain_server.port)
    if name in ASYNC:
        async def attempt() -> None:
            engine = create_async_engine(url, poolclass=NullPool)
            with contextlib.suppress(Exception):
                async with engine.connect():
                    pass
            await engine.dispose()

        asyncio.run(attempt())
    else:
        with contextlib.suppress(Exception):
            sa.create_engine(url, poolclass=NullPool).connect()
    assert plain_server.connections >= 1
    assert b"Action=connect" not in plain_server.received


# -- async: signing with slow credentials does not stall the event loop -------------------------


async def _connect_once(engine: AsyncEngine) -> None:
    """Connect once; failure expected (nothing listens), the signing is what is measured."""
    with contextlib.suppress(Exception):
        async with engine.connect():
            pass
    await engine.dispose()


def _slow_engine(name: str, source: SlowSource,
                 tweak: Callable[[IamConnector], None] | None = None) -> AsyncEngine:
    spec = DRIVERS[name]
    engine = create_async_engine(
        f"{spec.family}+{name}://iamuser@127.0.0.1:{closed_port()}/app", poolclass=NullPool)
    connector = IamConnector(engine.url, engine.sync_engine.dialect,
                             parse_options(keywords={"aws_region": "us-east-1"}), source=source)
    if tweak:
        tweak(connector)
    event.listen(engine.sync_engine, "do_connect", connector)
    return engine


@pytest.mark.parametrize("name", sorted(ASYNC))
def test_slow_credentials_do_not_block_the_event_loop(name: str, loop_lag: Any) -> None:
    source = SlowSource(delay=0.5)
    engine = _slow_engine(name, source)
    lag, elapsed = asyncio.run(loop_lag(lambda: _connect_once(engine)))
    assert source.calls == 1
    assert elapsed >= 0.5  # the connect did wait for the signing...
    assert lag < 0.2, f"event loop stalled {lag * 1000:.0f} ms"  # ...without stalling the loop


def test_control_signing_on_the_loop_is_seen_by_the_ticker(loop_lag: Any) -> None:
    """Proves the ticker measures: the same slow signing, forced onto the loop, stalls it."""
    def on_loop(connector: IamConnector) -> None:
        connector.target = connector.target.replace(
            spec=connector.target.spec.replace(is_async=False))

    source = SlowSource(delay=0.5)
    engine = _slow_engine("asyncpg", source, on_loop)
    # Keep the listener from switching back to the async row.
    engine.sync_engine.dialect.is_async = False
    lag, _ = asyncio.run(loop_lag(lambda: _connect_once(engine)))
    assert lag >= 0.4
