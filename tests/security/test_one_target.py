"""One target: the host and port the token is signed for are the ones the driver dials
(issue 20, finding 4).

``?host=127.0.0.1&port=N`` in a URL query (which SQLAlchemy's dialects let override the URL's
host and port), the same in ``connect_args``, libpq's ``hostaddr``/``service``/``PGHOSTADDR``,
asyncpg's ``dsn`` or mysql-connector's ``failover`` made drivers connect to another server
with a token signed for the URL's host. Here that other server is a recording one whose
certificate is *valid* for the name checked, so TLS verification alone would not stop the
token: it must receive nothing, on all ten drivers, and the refusal must come before any
byte leaves. Positive controls: the plugin's normal connect delivers the token to the URL's
server (and only there), and a bare driver pointed at the other server delivers its password
there, so the harness would see a leak.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

import sqlalchemy_rds_iam
from sqlalchemy_rds_iam import InsecureConnectionError
from sqlalchemy_rds_iam.drivers import DRIVERS
from tests.fakes import Pki, RecordingServer, login, make_pki, set_aws_env

PG = ["psycopg2", "psycopg", "psycopg_async", "pg8000", "asyncpg"]
MY = ["pymysql", "mysqldb", "mysqlconnector", "aiomysql", "asyncmy"]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("one-target-pki"))


@pytest.fixture(scope="module")
def servers(pki: Pki) -> Iterator[dict[str, dict[str, RecordingServer]]]:
    """Per protocol: ``home`` (the URL's server) and ``elsewhere``, both with a certificate
    the test CA issued for localhost/127.0.0.1."""
    made = {family: {"home": RecordingServer(family, "valid", pki),
                     "elsewhere": RecordingServer(family, "valid", pki)}
            for family in ("postgresql", "mysql")}
    try:
        yield made
    finally:
        for pair in made.values():
            for server in pair.values():
                server.close()


@pytest.fixture(autouse=True)
def _credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    set_aws_env(monkeypatch)
    for name in ("PGHOST", "PGHOSTADDR", "PGPORT", "PGSERVICE", "PGSERVICEFILE", "PGSSLMODE"):
        monkeypatch.delenv(name, raising=False)


def url_for(driver: str, port: int, ca: str, query: str = "", plugin: bool = True) -> str:
    spec = DRIVERS[driver]
    # libmysqlclient reads "localhost" as its Unix socket: mysqlclient dials 127.0.0.1.
    host = "127.0.0.1" if driver == "mysqldb" else "localhost"
    params = [f"plugin=rds_iam&aws_region=us-east-1&iam_ca_bundle={ca}"] if plugin else []
    if driver == "mysqldb" and plugin:
        params.append("iam_host=localhost")
    if query:
        params.append(query)
    return f"{spec.family}+{driver}://iamuser@{host}:{port}/app" + (
        "?" + "&".join(params) if params else "")


def connect(driver: str, url: str, connect_args: dict[str, Any] | None = None,
            attach: bool = False, ca: str = "") -> None:
    """One connect through SQLAlchemy (raises what it raises)."""
    options = {"aws_region": "us-east-1", "iam_ca_bundle": ca}
    if driver == "mysqldb":
        options["iam_host"] = "localhost"
    login(url, sql="", attach=options if attach else None, connect_args=connect_args or {})


def moves(driver: str, elsewhere: int) -> list[tuple[str, dict[str, Any], str]]:
    """(URL query, connect_args, the setting the refusal must name) that would dial elsewhere."""
    rows: list[tuple[str, dict[str, Any], str]] = [
        (f"port={elsewhere}", {}, "port="),
        (f"host=127.0.0.1&port={elsewhere}", {}, "="),
        ("", {"port": elsewhere}, "port="),
        ("", {"host": "127.0.0.1", "port": elsewhere}, "="),
        ("", {"port": str(elsewhere)}, "port="),
    ]
    if driver != "mysqldb":
        rows.append(("host=127.0.0.1", {}, "host=127.0.0.1 "))
    if driver in ("psycopg2", "psycopg", "psycopg_async"):
        rows += [("hostaddr=127.0.0.2", {}, "hostaddr="),
                 ("service=elsewhere", {}, "service="),
                 ("", {"dsn": f"host=127.0.0.1 port={elsewhere}"}, "dsn=")]
    if driver == "asyncpg":
        rows += [("", {"dsn": f"postgresql://iamuser@127.0.0.1:{elsewhere}/app"}, "dsn="),
                 ("service=elsewhere", {}, "service=")]
    if driver == "mysqlconnector":
        rows += [("", {"failover": [{"host": "127.0.0.1", "port": elsewhere}]}, "failover="),
                 ("", {"dns_srv": True}, "dns_srv=")]
    if driver in ("pymysql", "aiomysql", "asyncmy", "mysqldb"):
        rows.append(("", {"unix_socket": "/run/mysqld/mysqld.sock"}, "unix_socket="))
    return rows


@pytest.mark.parametrize("driver", PG + MY)
def test_no_argument_moves_the_connection(driver: str, pki: Pki,
                                          servers: dict[str, dict[str, RecordingServer]]) -> None:
    pair = servers[DRIVERS[driver].family]
    home, elsewhere = pair["home"], pair["elsewhere"]
    ca = str(pki.ca)
    tried = 0
    for query, connect_args, named in moves(driver, elsewhere.port):
        for attach in (False, True):
            before = (home.connections, elsewhere.connections)
            url = url_for(driver, home.port, ca, query, plugin=not attach)
            with pytest.raises(InsecureConnectionError) as refused:
                connect(driver, url, connect_args, attach=attach, ca=ca)
            assert named in str(refused.value), (query, connect_args, str(refused.value))
            assert elsewhere.take() == b"" and home.take() == b"", (query, connect_args)
            assert (home.connections, elsewhere.connections) == before  # not even a SYN
            tried += 1
    assert tried >= 10


@pytest.mark.parametrize("driver", ["psycopg2", "pg8000", "asyncpg", "pymysql", "mysqldb",
                                    "mysqlconnector"])
def test_another_user_is_refused(driver: str, pki: Pki,
                                 servers: dict[str, dict[str, RecordingServer]]) -> None:
    """The token is signed for the URL's user: ``?user=`` naming another is refused."""
    home = servers[DRIVERS[driver].family]["home"]
    with pytest.raises(InsecureConnectionError, match=r"user=admin .*signed for"):
        connect(driver, url_for(driver, home.port, str(pki.ca), "user=admin"))
    assert home.take() == b""


@pytest.mark.parametrize("driver", PG + MY)
def test_control_the_token_reaches_the_urls_server_only(
        driver: str, pki: Pki, servers: dict[str, dict[str, RecordingServer]]) -> None:
    """Positive control: the same harness sees the token arrive, at ``target.address``."""
    pair = servers[DRIVERS[driver].family]
    home, elsewhere = pair["home"], pair["elsewhere"]
    home.take()
    elsewhere.take()
    url = url_for(driver, home.port, str(pki.ca), f"port={home.port}")  # same port: fine
    with pytest.raises(Exception) as failed:  # the fake server refuses every login
        connect(driver, url)
    assert not isinstance(failed.value, InsecureConnectionError)
    assert home.got_token(), f"{driver}: no token at the URL's server ({failed.value})"
    assert not elsewhere.got_token()
    engine = sa.create_engine(url) if not DRIVERS[driver].is_async else create_async_engine(url)
    host = "127.0.0.1" if driver == "mysqldb" else "localhost"
    assert sqlalchemy_rds_iam.connector(engine).target.address == (host, home.port)


def test_control_a_driver_sent_elsewhere_delivers_its_password_there(
        pki: Pki, servers: dict[str, dict[str, RecordingServer]]) -> None:
    """Without the plugin, ``host``/``port`` move psycopg2 and PyMySQL, and TLS verification
    does not stop them (the other server's certificate is valid): the harness sees it."""
    import psycopg2
    import pymysql

    elsewhere = servers["postgresql"]["elsewhere"]
    elsewhere.take()
    with contextlib.suppress(psycopg2.Error):
        psycopg2.connect(host="localhost", port=elsewhere.port, user="iamuser",
                         password="Action=connect-control", sslmode="verify-full",
                         sslrootcert=str(pki.ca), gssencmode="disable", connect_timeout=5)
    assert elsewhere.got_token()
    elsewhere = servers["mysql"]["elsewhere"]
    elsewhere.take()
    with contextlib.suppress(pymysql.MySQLError):
        pymysql.connect(host="localhost", port=elsewhere.port, user="iamuser",
                        password="Action=connect-control", ssl_ca=str(pki.ca),
                        ssl_verify_cert=True, ssl_verify_identity=True, connect_timeout=5)
    assert elsewhere.got_token()


# -- the environment: PGHOSTADDR ---------------------------------------------------------------


@pytest.fixture(scope="module")
def shadow(pki: Pki, servers: dict[str, dict[str, RecordingServer]]) -> Iterator[RecordingServer]:
    """A server on 127.0.0.2 at the home server's port, certificate valid for localhost."""
    server = RecordingServer("postgresql", "valid", pki, host="127.0.0.2",
                             port=servers["postgresql"]["home"].port)
    try:
        yield server
    finally:
        server.close()


def test_control_pghostaddr_moves_bare_libpq(pki: Pki, shadow: RecordingServer) -> None:
    import psycopg2

    shadow.take()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("PGHOSTADDR", "127.0.0.2")
        with contextlib.suppress(psycopg2.Error):
            psycopg2.connect(host="localhost", port=shadow.port, user="iamuser",
                             password="Action=connect-control", sslmode="verify-full",
                             sslrootcert=str(pki.ca), gssencmode="disable", connect_timeout=5)
    assert shadow.got_token()


@pytest.mark.parametrize("driver", ["psycopg2", "psycopg", "psycopg_async"])
def test_pghostaddr_does_not_move_the_plugins_connection(
        driver: str, pki: Pki, shadow: RecordingServer,
        servers: dict[str, dict[str, RecordingServer]], monkeypatch: pytest.MonkeyPatch) -> None:
    home = servers["postgresql"]["home"]
    home.take()
    shadow.take()
    monkeypatch.setenv("PGHOSTADDR", "127.0.0.2")
    with pytest.raises(Exception) as failed:
        connect(driver, url_for(driver, home.port, str(pki.ca)))
    assert not isinstance(failed.value, InsecureConnectionError)
    assert not shadow.got_token()
    assert home.got_token()
