"""All nine drivers against the emulator: real servers that verify every token.

For each driver and server (PostgreSQL and PgBouncer for the PostgreSQL drivers, MariaDB
for the MySQL ones), through ``?plugin=rds_iam`` and through ``attach()``: two physical
connections held at once, a query on each, TLS confirmed by the server (``pg_stat_ssl``,
``Ssl_cipher``), and the verifier's log showing it accepted a fresh token for each.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool

import sqlalchemy_rds_iam
from sqlalchemy_rds_iam.credentials import FrozenCredentials
from sqlalchemy_rds_iam.drivers import DRIVERS
from sqlalchemy_rds_iam.options import parse_options
from sqlalchemy_rds_iam.plugin import IamConnector
from tests.fakes import SlowSource

if TYPE_CHECKING:
    from sqlalchemy_rds_iam.testing.info import EmulatorInfo, ServerInfo

pytestmark = pytest.mark.integration

PG_DRIVERS = ["psycopg2", "psycopg", "psycopg_async", "pg8000", "asyncpg"]
MY_DRIVERS = ["pymysql", "mysqldb", "mysqlconnector", "aiomysql", "asyncmy"]
CASES = (
    [(d, "postgresql") for d in PG_DRIVERS]
    + [(d, "pgbouncer") for d in PG_DRIVERS]
    + [(d, "mysql") for d in MY_DRIVERS]
)

# What the server says about the session: (TLS in use, a physical-connection id).
_PROBE = {
    "postgresql": "SELECT ssl, pg_backend_pid() FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
    "pgbouncer": "SELECT true, pg_backend_pid()",  # pgbouncer -> postgres is a local socket
    "mysql": "SELECT (SELECT VARIABLE_VALUE FROM information_schema.SESSION_STATUS "
             "WHERE VARIABLE_NAME = 'Ssl_cipher') <> '', CONNECTION_ID()",
}


def _client_tls(driver: str, raw: Any) -> bool:
    """Client side of the socket, for PgBouncer (its backend link is not the one to check)."""
    conn = raw.driver_connection
    if driver == "psycopg2":
        return bool(conn.info.ssl_in_use)
    if driver in ("psycopg", "psycopg_async"):
        return bool(conn.pgconn.ssl_in_use)
    if driver == "pg8000":
        return isinstance(conn._usock, ssl.SSLSocket)
    if driver == "asyncpg":
        return conn._transport.get_extra_info("ssl_object") is not None
    raise AssertionError(driver)


def _engine_kwargs() -> dict[str, Any]:
    return {"poolclass": NullPool}


def _url(server: ServerInfo, driver: str, how: str = "url", **query: str) -> str:
    """The emulator's URL; for mysqlclient over TCP, since libmysqlclient's "localhost" is
    the Unix socket (which offers no TLS). The token stays signed for ``localhost``."""
    if driver == "mysqldb" and server.host == "localhost":
        if how == "url":
            query["iam_host"] = "localhost"
        url = server.url(driver=driver, plugin=(how == "url"), **query)
        return url.replace("@localhost:", "@127.0.0.1:", 1)
    return server.url(driver=driver, plugin=(how == "url"), **query)


def _attach_options(info: EmulatorInfo, driver: str = "") -> dict[str, Any]:
    options = {"aws_region": info.region, "iam_ca_bundle": info.ca_path}
    if driver == "mysqldb":
        options["iam_host"] = "localhost"
    return options


def _check(server_name: str, rows: list[tuple[Any, ...]]) -> None:
    assert len(rows) == 2
    assert all(tls in (True, 1) for tls, _ in rows), rows
    assert rows[0][1] != rows[1][1], "two physical connections"


def _verified(server: ServerInfo, since: int, user: str) -> int:
    return sum(1 for v in server.verifications(since) if v.ok and v.user == user)


@pytest.mark.parametrize("how", ["url", "attach"])
@pytest.mark.parametrize(("driver", "server_name"), CASES)
@pytest.mark.usefixtures("rds_iam_aws_env")
def test_driver_matrix(rds_iam_emulator: EmulatorInfo, driver: str, server_name: str,
                       how: str) -> None:
    server = rds_iam_emulator.servers[server_name]
    user = server.users[0]
    since = server.log_offset()
    url = _url(server, driver, how)
    probe = sa.text(_PROBE[server_name])

    if DRIVERS[driver].is_async:
        async def run() -> list[tuple[Any, ...]]:
            engine = create_async_engine(url, **_engine_kwargs())
            if how == "attach":
                sqlalchemy_rds_iam.attach(engine, **_attach_options(rds_iam_emulator, driver))
            try:
                async with engine.connect() as one, engine.connect() as two:
                    rows = []
                    for conn in (one, two):
                        tls, ident = (await conn.execute(probe)).one()
                        if server_name == "pgbouncer":
                            tls = _client_tls(driver, await conn.get_raw_connection())
                        rows.append((tls, ident))
                    assert (await one.execute(sa.text("SELECT current_user"))).scalar()
                    return rows
            finally:
                await engine.dispose()

        rows = asyncio.run(run())
    else:
        engine = sa.create_engine(url, **_engine_kwargs())
        if how == "attach":
            sqlalchemy_rds_iam.attach(engine, **_attach_options(rds_iam_emulator, driver))
        with engine.connect() as one, engine.connect() as two:
            rows = []
            for conn in (one, two):
                tls, ident = conn.execute(probe).one()
                if server_name == "pgbouncer":
                    tls = _client_tls(driver, conn.connection)
                rows.append((tls, ident))
            assert one.execute(sa.text("SELECT current_user")).scalar()
        engine.dispose()

    _check(server_name, rows)
    assert _verified(server, since, user) >= 2  # a token the verifier accepted, per connection


@pytest.mark.parametrize("driver", PG_DRIVERS + MY_DRIVERS)
def test_verify_ca_mode_connects(rds_iam_emulator: EmulatorInfo, driver: str,
                                 rds_iam_aws_env: dict[str, str]) -> None:
    family = DRIVERS[driver].family
    server = rds_iam_emulator.postgresql if family == "postgresql" else rds_iam_emulator.mysql
    url = _url(server, driver, iam_tls="verify-ca")
    if DRIVERS[driver].is_async:
        async def run() -> None:
            engine = create_async_engine(url, poolclass=NullPool)
            async with engine.connect() as conn:
                assert (await conn.execute(sa.text("SELECT 1"))).scalar() == 1
            await engine.dispose()

        asyncio.run(run())
    else:
        with sa.create_engine(url, poolclass=NullPool).connect() as conn:
            assert conn.execute(sa.text("SELECT 1")).scalar() == 1


@pytest.mark.parametrize("driver", PG_DRIVERS + MY_DRIVERS)
def test_insecure_url_is_refused_before_connecting(rds_iam_emulator: EmulatorInfo,
                                                   driver: str) -> None:
    spelling = {
        "psycopg2": "sslmode=disable", "psycopg": "sslmode=prefer",
        "psycopg_async": "sslmode=allow", "pg8000": "ssl_context=false", "asyncpg": "ssl=disable",
        "pymysql": "ssl_disabled=false", "mysqldb": "ssl_mode=DISABLED",
        "mysqlconnector": "ssl_verify_cert=false", "aiomysql": "ssl=false", "asyncmy": "ssl=0",
    }[driver]
    family = DRIVERS[driver].family
    server = rds_iam_emulator.postgresql if family == "postgresql" else rds_iam_emulator.mysql
    key, value = spelling.split("=")
    since = server.log_offset()
    url = _url(server, driver, **{key: value})
    with pytest.raises(sqlalchemy_rds_iam.InsecureConnectionError):
        if DRIVERS[driver].is_async:
            create_async_engine(url)
        else:
            sa.create_engine(url)
    assert server.verifications(since) == []


# -- async: the event loop keeps running while slow credentials load ---------------------------


def slow_emulator_source(info: EmulatorInfo, delay: float) -> SlowSource:
    """The emulator's identity, loaded as slowly as an STS or IMDS round trip might be."""
    identity = info.identities["primary"]
    credentials = FrozenCredentials(identity.access_key_id, identity.secret_access_key,
                                    identity.session_token, None)
    return SlowSource(delay, credentials, info.region, "emulator identity, slowly")


async def _select_one(engine: Any) -> None:
    conn: AsyncConnection
    try:
        async with engine.connect() as conn:
            assert (await conn.execute(sa.text("SELECT 1"))).scalar() == 1
    finally:
        await engine.dispose()


@pytest.mark.parametrize("driver", [d for d in PG_DRIVERS + MY_DRIVERS if DRIVERS[d].is_async])
def test_cold_signing_does_not_block_the_loop(rds_iam_emulator: EmulatorInfo, driver: str,
                                              record_property: Any, loop_lag: Any) -> None:
    family = DRIVERS[driver].family
    server = rds_iam_emulator.postgresql if family == "postgresql" else rds_iam_emulator.mysql
    engine = create_async_engine(_url(server, driver, "attach"), poolclass=NullPool)
    options = parse_options(keywords=_attach_options(rds_iam_emulator))
    connector = IamConnector(engine.url, engine.sync_engine.dialect, options,
                             source=slow_emulator_source(rds_iam_emulator, 0.5))
    event.listen(engine.sync_engine, "do_connect", connector)
    lag, elapsed = asyncio.run(loop_lag(lambda: _select_one(engine)))
    record_property("max_loop_lag_ms", round(lag * 1000, 1))
    record_property("connect_ms", round(elapsed * 1000, 1))
    assert elapsed >= 0.5
    assert lag < 0.2, f"event loop stalled {lag * 1000:.0f} ms while signing"


@pytest.mark.usefixtures("rds_iam_aws_env")
def test_aiomysql_close_returns_once_the_socket_is_closed(rds_iam_emulator: EmulatorInfo) -> None:
    """aiomysql's ``ensure_closed`` only starts the TLS shutdown; a loop ending right after
    (``asyncio.run`` after ``dispose()``) left the socket to the garbage collector, whose
    ResourceWarning then failed whichever test was running. Ours waits for the socket."""
    url = _url(rds_iam_emulator.mysql, "aiomysql")

    async def run() -> list[int]:
        engine = create_async_engine(url, poolclass=NullPool)
        left_open = []
        for _ in range(3):
            async with engine.connect() as conn:  # NullPool: closed when the block ends
                raw = (await conn.get_raw_connection()).driver_connection
                sock = raw._writer.transport.get_extra_info("socket")
            left_open.append(sock.fileno())  # checked before the loop runs on
        await engine.dispose()
        return left_open

    assert asyncio.run(run()) == [-1, -1, -1]
