"""TLS secrets stay in memory: no key log, whatever ``SSLKEYLOGFILE`` or a service file says
(issue 20, finding 5).

``ssl.create_default_context`` turns on a key log whenever ``SSLKEYLOGFILE`` is exported:
every TLS secret of every connection, so every token, readable off a packet capture by
whoever can read that file. The contexts the plugin builds (pg8000, asyncpg, aiomysql,
asyncmy, and now PyMySQL and mysql-connector, whose own came from that function) log
nothing, a user's context that logs is refused, and libpq 18's ``sslkeylogfile`` (from a
keyword or a ``PGSERVICE`` service file) is refused or overridden. Each against the emulator,
with positive controls: a default context with the variable set, and bare libpq 18 with the
service file, do write the secrets.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from sqlalchemy_rds_iam import InsecureConnectionError
from sqlalchemy_rds_iam import tls as tls_module
from sqlalchemy_rds_iam.drivers import DRIVERS
from tests.fakes import login

if TYPE_CHECKING:
    from sqlalchemy_rds_iam.testing.info import EmulatorInfo, ServerInfo

pytestmark = pytest.mark.integration

PG = ["psycopg2", "psycopg", "psycopg_async", "pg8000", "asyncpg"]
MY = ["pymysql", "mysqldb", "mysqlconnector", "aiomysql", "asyncmy"]
#: What a key log line starts with (TLS 1.3 traffic secrets; TLS 1.2 master secrets).
SECRET_LABELS = (b"CLIENT_HANDSHAKE_TRAFFIC_SECRET", b"CLIENT_TRAFFIC_SECRET_0",
                 b"CLIENT_RANDOM")


def secrets_in(path: Path) -> int:
    """How many key log lines ``path`` holds (0 if it does not exist)."""
    if not path.exists():
        return 0
    return sum(1 for line in path.read_bytes().splitlines() if line.startswith(SECRET_LABELS))


@pytest.fixture
def keylog(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """``SSLKEYLOGFILE`` exported, and no context cached from before it was (which would
    make the test pass without testing anything)."""
    path = tmp_path / "tls-keys.log"
    monkeypatch.setenv("SSLKEYLOGFILE", str(path))
    tls_module._cached_context.cache_clear()
    yield path
    tls_module._cached_context.cache_clear()


def server_for(info: EmulatorInfo, driver: str) -> ServerInfo:
    return info.postgresql if DRIVERS[driver].family == "postgresql" else info.mysql


def url_for(server: ServerInfo, driver: str, **query: str) -> str:
    if driver == "mysqldb" and server.host == "localhost":  # libmysqlclient: TCP, not the socket
        query["iam_host"] = "localhost"
        return server.url(driver=driver, plugin=True, **query).replace("@localhost:", "@127.0.0.1:", 1)
    return server.url(driver=driver, plugin=True, **query)


def select_one(url: str, connect_args: dict[str, Any] | None = None) -> None:
    assert login(url, sql="SELECT 1", connect_args=connect_args or {}) == 1


@pytest.mark.usefixtures("rds_iam_aws_env")
@pytest.mark.parametrize("driver", PG + MY)
def test_no_key_log_with_sslkeylogfile_exported(rds_iam_emulator: EmulatorInfo, driver: str,
                                                keylog: Path) -> None:
    select_one(url_for(server_for(rds_iam_emulator, driver), driver))
    assert not keylog.exists() or keylog.stat().st_size == 0, keylog.read_bytes()[:200]


@pytest.mark.usefixtures("rds_iam_aws_env")
@pytest.mark.parametrize(("driver", "query"), [
    ("pymysql", {"ssl_check_hostname": "false"}),       # the URL's ssl dict
    ("mysqlconnector", {"use_pure": "true"}),            # its pure-Python TLS, explicitly
    ("asyncmy", {"ssl_check_hostname": "false"}),
])
def test_no_key_log_from_the_other_tls_spellings(rds_iam_emulator: EmulatorInfo, driver: str,
                                                 query: dict[str, str], keylog: Path) -> None:
    select_one(url_for(server_for(rds_iam_emulator, driver), driver, **query))
    assert secrets_in(keylog) == 0


@pytest.mark.usefixtures("rds_iam_aws_env")
def test_pymysql_keywords_from_connect_args_log_nothing(rds_iam_emulator: EmulatorInfo,
                                                        keylog: Path) -> None:
    server = rds_iam_emulator.mysql
    select_one(url_for(server, "pymysql"),
               {"ssl_ca": rds_iam_emulator.ca_path, "ssl_verify_identity": True})
    assert secrets_in(keylog) == 0


def test_control_a_default_context_does_write_the_secrets(rds_iam_emulator: EmulatorInfo,
                                                          keylog: Path) -> None:
    """The harness sees a key log: pg8000 with ``ssl.create_default_context()``, bare."""
    import pg8000

    server = rds_iam_emulator.postgresql
    context = ssl.create_default_context(cafile=rds_iam_emulator.ca_path)
    assert context.keylog_filename == str(keylog)
    with pytest.raises(pg8000.Error):  # the handshake is done before the login fails
        pg8000.connect(user=server.users[0], host=server.host, port=server.port,
                       database=server.database, password="not-a-token",
                       ssl_context=context, timeout=10)
    assert secrets_in(keylog) > 0


# -- a user's context that logs keys -----------------------------------------------------------


@pytest.mark.parametrize(("driver", "key"), [("pg8000", "ssl_context"), ("asyncpg", "ssl"),
                                             ("pymysql", "ssl"), ("aiomysql", "ssl"),
                                             ("asyncmy", "ssl")])
def test_a_users_context_with_a_key_log_is_refused(driver: str, key: str, keylog: Path,
                                                   rds_iam_emulator: EmulatorInfo) -> None:
    context = ssl.create_default_context(cafile=rds_iam_emulator.ca_path)  # from SSLKEYLOGFILE
    server = server_for(rds_iam_emulator, driver)
    url = url_for(server, driver)
    since = server.log_offset()
    with pytest.raises(InsecureConnectionError, match="keylog_filename"):
        if DRIVERS[driver].is_async:
            create_async_engine(url, connect_args={key: context})
        else:
            sa.create_engine(url, connect_args={key: context})
    assert server.verifications(since) == []


@pytest.mark.usefixtures("rds_iam_aws_env")
def test_a_context_that_starts_logging_after_the_check_is_refused_at_connect(
        rds_iam_emulator: EmulatorInfo, tmp_path: Path) -> None:
    """The memoized check counts ``keylog_filename``: set later, the next connect refuses."""
    server = rds_iam_emulator.postgresql
    context = ssl.create_default_context(cafile=rds_iam_emulator.ca_path)
    engine = sa.create_engine(url_for(server, "pg8000"), poolclass=NullPool,
                              connect_args={"ssl_context": context})
    with engine.connect():
        pass
    context.keylog_filename = str(tmp_path / "later.log")
    with pytest.raises(InsecureConnectionError, match="keylog_filename"):
        engine.connect()
    assert secrets_in(tmp_path / "later.log") == 0
    engine.dispose()


# -- libpq 18's sslkeylogfile: a keyword, or a service file --------------------------------------


def _libpq18() -> bool:
    import psycopg

    return psycopg.pq.version() >= 180000


def test_sslkeylogfile_keyword_is_refused(tmp_path: Path, rds_iam_emulator: EmulatorInfo) -> None:
    server = rds_iam_emulator.postgresql
    for driver in ("psycopg2", "psycopg"):
        with pytest.raises(InsecureConnectionError, match=r"sslkeylogfile=.*TLS session secrets"):
            sa.create_engine(url_for(server, driver, sslkeylogfile=str(tmp_path / "k.log")))


@pytest.fixture
def evil_service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``PGSERVICE`` naming a service file entry that turns on libpq 18's key log."""
    log = tmp_path / "service-keys.log"
    conf = tmp_path / "pg_service.conf"
    conf.write_text(f"[evil]\nsslkeylogfile={log}\n")
    monkeypatch.setenv("PGSERVICEFILE", str(conf))
    monkeypatch.setenv("PGSERVICE", "evil")
    return log


def test_control_bare_libpq18_follows_the_service_file(rds_iam_emulator: EmulatorInfo,
                                                       evil_service: Path) -> None:
    if not _libpq18():
        pytest.skip("psycopg's libpq is older than 18: no sslkeylogfile to follow")
    import psycopg

    server = rds_iam_emulator.postgresql
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(host=server.host, port=server.port, user=server.users[0],
                        dbname=server.database, password="not-a-token", sslmode="verify-full",
                        sslrootcert=rds_iam_emulator.ca_path, gssencmode="disable")
    assert secrets_in(evil_service) > 0


@pytest.mark.usefixtures("rds_iam_aws_env")
@pytest.mark.parametrize("driver", ["psycopg", "psycopg_async"])
def test_a_service_file_cannot_turn_the_key_log_on(rds_iam_emulator: EmulatorInfo, driver: str,
                                                   evil_service: Path) -> None:
    if not _libpq18():
        pytest.skip("psycopg's libpq is older than 18: no sslkeylogfile to follow")
    select_one(url_for(rds_iam_emulator.postgresql, driver))
    assert secrets_in(evil_service) == 0
