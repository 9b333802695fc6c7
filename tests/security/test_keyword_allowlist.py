"""A real allow-list for every driver's keywords, libpq's included (issue 20, finding 5).

Every argument a driver receives is known to its row (``DriverSpec.keywords``): checked by
the row, harmless, placed from the target, or refused with what to write instead. Proved:

* coverage: every parameter of each installed driver's ``connect()`` (and every keyword of
  the installed libpq) has a rule, so a driver upgrade that adds one fails here first;
* every admitted keyword passes (offline, for all ten drivers), and the ones real
  applications pass (Prefect's asyncpg options; Airflow/Optuna/MLflow/Celery URL options)
  still log in to the emulator;
* every refused keyword, and any unknown key hypothesis draws, is refused at
  ``create_engine`` before any byte leaves (a recording server sees no connection at all;
  its positive control: the same server records a token when the settings are fine).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import string
import urllib.parse
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

import sqlalchemy_rds_iam
from sqlalchemy_rds_iam import InsecureConnectionError
from sqlalchemy_rds_iam.drivers import CHECKED, DRIVERS, HARMLESS, OURS, PLACED
from sqlalchemy_rds_iam.options import OPTIONS
from tests.fakes import Pki, RecordingServer, driver_arguments, login, make_pki, set_aws_env

if TYPE_CHECKING:
    from sqlalchemy_rds_iam.testing.info import EmulatorInfo, ServerInfo

RDS = "db.cluster-abc123.us-east-1.rds.amazonaws.com"
ALL = sorted(DRIVERS)


def make_engine(url: str, **kwargs: Any) -> sa.Engine:
    if DRIVERS[sa.make_url(url).get_driver_name()].is_async:
        return create_async_engine(url, **kwargs).sync_engine
    return sa.create_engine(url, **kwargs)


def rds_url(driver: str, query: str = "") -> str:
    spec = DRIVERS[driver]
    return f"{spec.family}+{driver}://iamuser@{RDS}/app?plugin=rds_iam" + (
        f"&{query}" if query else "")


# -- coverage: the installed drivers' signatures ----------------------------------------------


def _parameters(function: Any) -> set[str]:
    return {name for name, p in inspect.signature(function).parameters.items()
            if name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}


def _libpq_keywords() -> set[str]:
    import psycopg

    return {d.keyword.decode() for d in psycopg.pq.Conninfo.get_defaults()}


def installed_arguments(driver: str) -> set[str]:
    """What the installed driver's connect() accepts, read from the package itself."""
    if driver == "psycopg2":
        import psycopg2

        return _parameters(psycopg2.connect) | _libpq_keywords()
    if driver in ("psycopg", "psycopg_async"):
        import psycopg

        return _parameters(psycopg.Connection.connect) | _libpq_keywords()
    if driver == "pg8000":
        import pg8000

        return _parameters(pg8000.connect)
    if driver == "asyncpg":
        import asyncpg

        return _parameters(asyncpg.connect)
    if driver == "pymysql":
        import pymysql

        return _parameters(pymysql.connections.Connection.__init__)
    if driver == "aiomysql":
        import aiomysql

        return _parameters(aiomysql.connect)
    if driver == "asyncmy":
        import asyncmy

        return _parameters(asyncmy.connect)
    if driver == "mysqlconnector":
        from mysql.connector import constants

        return set(constants.DEFAULT_CONFIGURATION) | set(constants.CNX_POOL_ARGS) | {
            "failover", "option_files", "option_groups"}
    assert driver == "mysqldb"
    # mysqlclient's C keyword list (MySQLdb/_mysql.c, kwlist) and its Python ones.
    return {"host", "user", "password", "database", "port", "unix_socket", "conv",
            "connect_timeout", "compress", "named_pipe", "init_command", "read_default_file",
            "read_default_group", "client_flag", "ssl", "ssl_mode", "local_infile",
            "read_timeout", "write_timeout", "charset", "auth_plugin", "server_public_key_path",
            "local_infile_dir", "db", "passwd", "cursorclass", "collation", "use_unicode",
            "sql_mode", "binary_prefix", "executemany_fallback", "multi_statements",
            "autocommit"}


@pytest.mark.parametrize("driver", ALL)
def test_every_argument_of_the_installed_driver_has_a_rule(driver: str) -> None:
    missing = installed_arguments(driver) - set(DRIVERS[driver].keywords.rules)
    assert not missing, f"{driver}: no rule for {sorted(missing)}"


@pytest.mark.parametrize("driver", ALL)
def test_what_sqlalchemy_puts_in_is_admitted(driver: str) -> None:
    """The keys the dialect's create_connect_args produces for a typical URL are admitted."""
    engine = make_engine(rds_url(driver))
    produced = set(engine.dialect.create_connect_args(engine.url)[1])
    assert produced <= DRIVERS[driver].keywords.admitted(), produced


def test_the_dangerous_ones_are_refused() -> None:
    libpq = DRIVERS["psycopg2"].keywords.rules
    for key in ("service", "servicefile", "passfile", "sslsni", "dsn", "requiressl"):
        assert type(libpq[key]) is tuple, key
    for driver in ("psycopg2", "psycopg", "psycopg_async"):
        rules = DRIVERS[driver].keywords.rules
        assert callable(rules["sslkeylogfile"]) and callable(rules["hostaddr"])  # '' only
    assert type(DRIVERS["asyncpg"].keywords.rules["passfile"]) is tuple
    assert type(DRIVERS["mysqlconnector"].keywords.rules["failover"]) is tuple


# -- unit: every admitted keyword passes, every refused one is refused --------------------------

#: A value the rule accepts, for keywords whose value is checked (others: any value).
GOOD: dict[str, Any] = {
    "options": "-c statement_timeout=5000", "ssl_min_protocol_version": "TLSv1.2",
    "ssl_max_protocol_version": "TLSv1.3", "sslcompression": 0, "gssdelegation": "0",
    "hostaddr": "", "sslkeylogfile": "", "defer_connect": False,
}
#: A value the rule refuses, for the same keywords.
BAD: dict[str, Any] = {
    "options": 5, "ssl_min_protocol_version": "TLSv1", "ssl_max_protocol_version": "TLSv1.1",
    "sslcompression": 1, "gssdelegation": 1, "hostaddr": "127.0.0.2",
    "sslkeylogfile": "/tmp/keys.log", "defer_connect": True, "connection_factory": "x",
    "connection_class": object, "auth_plugin": "mysql_native_password",
}


def good_value(driver: str, key: str) -> Any:
    if key == "connection_factory":
        import psycopg2.extensions

        return psycopg2.extensions.connection
    if key == "connection_class":
        import asyncpg

        return asyncpg.Connection
    if key == "auth_plugin" and driver == "mysqlconnector":
        return "mysql_clear_password"
    return GOOD.get(key, "harmless-value")


def harmless_keys(driver: str) -> list[str]:
    rules = DRIVERS[driver].keywords.rules
    return sorted(k for k, rule in rules.items()
                  if rule is HARMLESS or (callable(rule) and type(rule) is not tuple))


@pytest.mark.usefixtures("aws_env")
@pytest.mark.parametrize("driver", ALL)
def test_every_admitted_keyword_reaches_the_driver(driver: str) -> None:
    keys = harmless_keys(driver)
    assert len(keys) >= 5
    for key in keys:
        value = good_value(driver, key)
        engine = make_engine(rds_url(driver), connect_args={key: value})
        assert driver_arguments(engine, {**engine.dialect.create_connect_args(engine.url)[1],
                                         key: value})[key] == value, key


@pytest.mark.parametrize("driver", ALL)
def test_checked_values_are_refused_when_bad(driver: str) -> None:
    rules = DRIVERS[driver].keywords.rules
    checked = [k for k, rule in rules.items() if callable(rule) and k in BAD]
    for key in checked:
        with pytest.raises(InsecureConnectionError, match=f"{key}="):
            make_engine(rds_url(driver), connect_args={key: BAD[key]})


@pytest.mark.parametrize("driver", ALL)
def test_every_refused_keyword_is_refused_naming_it_and_the_fix(driver: str) -> None:
    rules = DRIVERS[driver].keywords.rules
    refused = [(k, rule) for k, rule in rules.items() if type(rule) is tuple]
    assert refused
    for key, (why, fix) in refused:
        with pytest.raises(InsecureConnectionError) as caught:
            make_engine(rds_url(driver), connect_args={key: "some-value"})
        message = str(caught.value)
        assert f"{key}=" in message and why in message and fix in message, message


def test_the_page_names_every_refused_keyword() -> None:
    """docs/security-allowlist.md is checked against the tables, not kept by hand alone."""
    from pathlib import Path

    page = (Path(__file__).parents[2] / "docs" / "security-allowlist.md").read_text()
    for spec in DRIVERS.values():
        for key, rule in spec.keywords.rules.items():
            if type(rule) is tuple and f"`{key}`" not in page:
                stem = key.rstrip("0123456789")
                assert f"`{stem}" in page or f"`{key.split('_')[0]}_*" in page, (spec.name, key)


@pytest.mark.parametrize(("driver", "key"), [("pymysql", "passwd"), ("mysqldb", "password"),
                                             ("psycopg2", "oauth_client_secret"),
                                             ("mysqlconnector", "password2")])
def test_a_refused_secret_is_not_quoted(driver: str, key: str) -> None:
    with pytest.raises(InsecureConnectionError) as caught:
        make_engine(rds_url(driver), connect_args={key: "hunter2-secret"})
    assert "hunter2" not in str(caught.value) and f"{key}=REDACTED" in str(caught.value)


def test_rules_are_one_of_the_kinds() -> None:
    for spec in DRIVERS.values():
        for key, rule in spec.keywords.rules.items():
            assert rule in (HARMLESS, CHECKED, PLACED, OURS) or callable(rule) or (
                type(rule) is tuple and len(rule) == 2), (spec.name, key)
        assert spec.keywords.rules.get(spec.password_key) == OURS


# -- property: unknown keys never get a byte out --------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("allowlist-pki"))


@pytest.fixture(scope="module")
def valid(pki: Pki) -> Iterator[dict[str, RecordingServer]]:
    made = {family: RecordingServer(family, "valid", pki) for family in ("postgresql", "mysql")}
    try:
        yield made
    finally:
        for server in made.values():
            server.close()


def local_url(driver: str, port: int, ca: str, query: str = "") -> str:
    spec = DRIVERS[driver]
    host = "127.0.0.1" if driver == "mysqldb" else "localhost"
    extra = "&iam_host=localhost" if driver == "mysqldb" else ""
    return (f"{spec.family}+{driver}://iamuser@{host}:{port}/app?plugin=rds_iam"
            f"&aws_region=us-east-1&iam_ca_bundle={ca}{extra}" + (f"&{query}" if query else ""))


_URL_FOLDED = frozenset({"ssl_ca", "ssl_key", "ssl_cert", "ssl_capath", "ssl_cipher",
                         "ssl_check_hostname"})
KEYS = st.text(string.ascii_lowercase + string.digits + "_", min_size=1, max_size=24)
VALUES = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=30),
                   st.lists(st.text(max_size=5), max_size=3))


@pytest.mark.parametrize("driver", ALL)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_unknown_keys_are_refused_before_any_byte_leaves(
        driver: str, data: st.DataObject, pki: Pki, valid: dict[str, RecordingServer],
        monkeypatch: pytest.MonkeyPatch) -> None:
    set_aws_env(monkeypatch)
    rules = DRIVERS[driver].keywords.rules
    key = data.draw(KEYS.filter(lambda k: k not in rules), label="key")
    value = data.draw(VALUES, label="value")
    server = valid[DRIVERS[driver].family]
    before = server.connections
    # In a URL query, some names are not the driver's: our options (the keyword-only ones,
    # boto3_session and credentials_provider, too: refused there as ours), the plugin
    # selector, and the ssl_* that SQLAlchemy's MySQL dialects fold into an ssl dict.
    in_url = data.draw(st.booleans(), label="in the URL query") and not (
        key.startswith(("aws_", "iam_", "plugin")) or key in OPTIONS or key in _URL_FOLDED)
    text = str(value) or "x"  # SQLAlchemy drops a query key whose value is empty
    query = f"{key}={urllib.parse.quote(text, safe='')}" if in_url else ""
    with pytest.raises(InsecureConnectionError, match=f"'{key}' is not a {driver} argument"):
        login(local_url(driver, server.port, str(pki.ca), query), sql="",
              connect_args={} if in_url else {key: value})
    assert server.connections == before and server.take() == b""


@pytest.mark.parametrize("driver", ALL)
def test_control_the_recording_server_sees_a_token(
        driver: str, pki: Pki, valid: dict[str, RecordingServer],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Positive control: with admitted keywords, the same server records the token."""
    set_aws_env(monkeypatch)
    server = valid[DRIVERS[driver].family]
    server.take()
    with contextlib.suppress(Exception):  # the fake server refuses every login
        login(local_url(driver, server.port, str(pki.ca)), sql="", connect_args={
            "timeout" if driver in ("pg8000", "asyncpg") else "connect_timeout": 10})
    assert server.got_token()


# -- integration: what real applications pass still logs in -----------------------------------

_LIBPQ_LIVE: dict[str, Any] = {
    "application_name": "airflow", "fallback_application_name": "mlflow", "connect_timeout": 10,
    "keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3,
    "tcp_user_timeout": 10000, "client_encoding": "utf8", "target_session_attrs": "any",
    "options": "-c statement_timeout=5000", "channel_binding": "prefer",
    "ssl_min_protocol_version": "TLSv1.2", "require_auth": "password",
}
LIVE: dict[str, dict[str, Any]] = {
    "psycopg2": _LIBPQ_LIVE,
    "psycopg": {**_LIBPQ_LIVE, "prepare_threshold": 10},
    "psycopg_async": {**_LIBPQ_LIVE, "prepare_threshold": 10},
    "pg8000": {"application_name": "optuna", "timeout": 10, "tcp_keepalive": True},
    # What Prefect's server hands asyncpg (prefect/server/database/configurations.py).
    "asyncpg": {"command_timeout": 10, "timeout": 10, "statement_cache_size": 0,
                "prepared_statement_cache_size": 0, "max_cached_statement_lifetime": 300,
                "server_settings": {"application_name": "prefect", "jit": "off"}},
    "pymysql": {"charset": "utf8mb4", "connect_timeout": 10, "read_timeout": 30,
                "write_timeout": 30, "init_command": "SET @celery = 1", "program_name": "celery",
                "binary_prefix": True, "local_infile": False, "max_allowed_packet": 16777216},
    "mysqldb": {"charset": "utf8mb4", "connect_timeout": 10, "read_timeout": 30,
                "write_timeout": 30, "init_command": "SET @celery = 1", "local_infile": False},
    "mysqlconnector": {"charset": "utf8mb4", "connection_timeout": 10, "read_timeout": 30,
                       "init_command": "SET @optuna = 1", "get_warnings": False,
                       "conn_attrs": {"app": "optuna"}, "use_pure": True},
    "aiomysql": {"charset": "utf8mb4", "connect_timeout": 10, "init_command": "SET @x = 1",
                 "program_name": "x", "echo": False},
    "asyncmy": {"charset": "utf8mb4", "connect_timeout": 10, "init_command": "SET @x = 1",
                "read_timeout": 30, "echo": False},
}
#: The same kind of options in the URL query, as Airflow/Optuna/MLflow/Celery configure them.
LIVE_QUERY: dict[str, str] = {
    "psycopg2": "application_name=airflow&connect_timeout=10&options=-c%20statement_timeout%3D5000",
    "psycopg": "application_name=mlflow&connect_timeout=10&keepalives=1",
    "pg8000": "application_name=optuna",
    "asyncpg": "prepared_statement_cache_size=0",
    "pymysql": "charset=utf8mb4&connect_timeout=10&read_timeout=30",
    "mysqldb": "charset=utf8mb4&connect_timeout=10",
    "mysqlconnector": "charset=utf8mb4&connection_timeout=10",
    "aiomysql": "charset=utf8mb4&connect_timeout=10",
    "asyncmy": "charset=utf8mb4&connect_timeout=10",
}


def emulator_url(server: ServerInfo, driver: str, query: str = "") -> str:
    url = server.url(driver=driver, plugin=True)
    if driver == "mysqldb" and server.host == "localhost":
        url = url.replace("@localhost:", "@127.0.0.1:", 1) + "&iam_host=localhost"
    return url + (f"&{query}" if query else "")


def select_user(driver: str, url: str, connect_args: dict[str, Any]) -> str:
    if DRIVERS[driver].is_async:
        async def run() -> str:
            engine = create_async_engine(url, poolclass=NullPool, connect_args=connect_args)
            try:
                async with engine.connect() as conn:
                    return str((await conn.execute(sa.text("SELECT current_user"))).scalar())
            finally:
                await engine.dispose()

        return asyncio.run(run())
    engine = sa.create_engine(url, poolclass=NullPool, connect_args=connect_args)
    try:
        with engine.connect() as conn:
            return str(conn.execute(sa.text("SELECT current_user")).scalar())
    finally:
        engine.dispose()


@pytest.mark.integration
@pytest.mark.usefixtures("rds_iam_aws_env")
@pytest.mark.parametrize("driver", ALL)
def test_admitted_keywords_still_log_in(rds_iam_emulator: EmulatorInfo, driver: str) -> None:
    family = DRIVERS[driver].family
    server = rds_iam_emulator.postgresql if family == "postgresql" else rds_iam_emulator.mysql
    since = server.log_offset()
    assert server.users[0] in select_user(driver, emulator_url(server, driver), LIVE[driver])
    if driver in LIVE_QUERY:
        assert server.users[0] in select_user(
            driver, emulator_url(server, driver, LIVE_QUERY[driver]), {})
    assert any(v.ok for v in server.verifications(since))
    assert set(LIVE[driver]) <= DRIVERS[driver].keywords.admitted()
    assert sqlalchemy_rds_iam  # the package under test, imported by the plugin entry point
