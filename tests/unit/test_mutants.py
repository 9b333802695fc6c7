"""Behaviours a hand-made mutant once changed without any unit test noticing (issue 17).

Each test pins one decision whose inversion the suite used to miss offline: libpq's ``@name``
abstract sockets, a user ``SSLContext`` in ``CERT_OPTIONAL``, asyncpg's exact ``ssl=`` words,
the port in a token's key, the token leaving the arguments after the connect, and the
hostname's region winning over the configuration's.
"""

from __future__ import annotations

import ssl
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

import sqlalchemy_rds_iam
from sqlalchemy_rds_iam import InsecureConnectionError
from sqlalchemy_rds_iam.credentials import FrozenCredentials
from sqlalchemy_rds_iam.drivers import DRIVERS
from sqlalchemy_rds_iam.tokens import TokenCache, TokenKey, sign_token
from tests.fakes import EXAMPLE_ACCESS_KEY, EXAMPLE_SECRET_KEY

RDS = "db.cluster-abc123.us-east-1.rds.amazonaws.com"
CREDENTIALS = FrozenCredentials(EXAMPLE_ACCESS_KEY, EXAMPLE_SECRET_KEY, None, None)


def engine_for(name: str, query: str = "", port: str = "") -> sa.Engine:
    spec = DRIVERS[name]
    url = f"{spec.family}+{name}://iamuser@{RDS}{port}/app?plugin=rds_iam" + (f"&{query}" if query else "")
    if spec.is_async:
        return create_async_engine(url).sync_engine
    return sa.create_engine(url)


def final_arguments(engine: sa.Engine, extra: dict[str, Any]) -> dict[str, Any]:
    cparams = dict(engine.dialect.create_connect_args(engine.url)[1])
    cparams.update(extra)
    return cparams


@pytest.mark.parametrize("name", ["psycopg2", "psycopg", "pg8000", "asyncpg", "pymysql"])
def test_an_abstract_unix_socket_host_is_refused(name: str) -> None:
    """``@name`` is a Linux abstract socket to libpq (and a path-like host elsewhere)."""
    engine = engine_for(name)
    connector = sqlalchemy_rds_iam.connector(engine)
    cparams = final_arguments(engine, {"host": "@pgsocket"})
    with pytest.raises(InsecureConnectionError):
        connector.connect_once(engine.dialect, [], cparams, token="must-not-be-sent")
    assert DRIVERS[name].password_key not in cparams


@pytest.mark.parametrize("name", ["psycopg2", "psycopg", "pg8000", "asyncpg", "pymysql"])
def test_the_socket_rule_itself_refuses_an_abstract_socket(name: str) -> None:
    """Below ``place()`` (which refuses any other host first), the row's own rule: a host
    that libpq or a driver reads as a socket (``/path``, ``@name``) is never TCP."""
    engine = engine_for(name)
    target = sqlalchemy_rds_iam.connector(engine).target
    cparams = final_arguments(engine, {})
    target.check(cparams)  # the positive control: placed, prepared and accepted
    for socket in ("@pgsocket", "/var/run/postgresql"):
        with pytest.raises(InsecureConnectionError, match="Unix socket"):
            target.spec.classify([], {**cparams, "host": socket})


@pytest.mark.parametrize("mode", [ssl.CERT_OPTIONAL, ssl.CERT_NONE])
@pytest.mark.parametrize(("name", "key"), [("pg8000", "ssl_context"), ("asyncpg", "ssl"),
                                           ("aiomysql", "ssl"), ("asyncmy", "ssl")])
def test_a_user_context_that_does_not_require_a_certificate_is_refused(
    name: str, key: str, mode: ssl.VerifyMode
) -> None:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = mode
    engine = engine_for(name)
    connector = sqlalchemy_rds_iam.connector(engine)
    cparams = final_arguments(engine, {key: context})
    with pytest.raises(InsecureConnectionError, match="verify_mode"):
        connector.connect_once(engine.dialect, [], cparams, token="must-not-be-sent")


@pytest.mark.parametrize("word", ["VERIFY-FULL", "Verify-Full", "verify-CA", " verify-full"])
def test_asyncpg_ssl_words_are_exact(word: str) -> None:
    """asyncpg itself compares case-sensitively; any other spelling is not ours to guess."""
    with pytest.raises(InsecureConnectionError):
        engine_for("asyncpg", f"ssl={word}")


def test_the_port_is_part_of_the_token_key_and_of_the_token() -> None:
    a = TokenKey("h", 5432, "alice", "us-east-1")
    b = TokenKey("h", 5433, "alice", "us-east-1")
    assert a != b and hash(a) != hash(b)
    assert sign_token(a, CREDENTIALS, now=0) != sign_token(b, CREDENTIALS, now=0)
    assert "h:5433/" in sign_token(b, CREDENTIALS, now=0)
    cache, calls = TokenCache(lambda: 0.0), []

    def sign() -> Any:
        from sqlalchemy_rds_iam.tokens import SignedToken

        calls.append(1)
        return SignedToken(f"t{len(calls)}", "AKID", None)

    assert cache.get(a, sign) != cache.get(b, sign)
    for port in (None, 3307):
        engine = engine_for("psycopg2", port=f":{port}" if port else "")
        assert sqlalchemy_rds_iam.connector(engine).key().port == (port or 5432)


class _Driver:
    """A DBAPI connect that records what it was given; its connection keeps the password."""

    def __init__(self) -> None:
        self.seen: dict[str, Any] = {}

    def __call__(self, *cargs: Any, **cparams: Any) -> Any:
        self.seen = dict(cparams)
        return type("Conn", (), {"password": cparams.get("password")})()


def test_the_token_leaves_the_arguments_and_the_driver_connection_after_connect(
    aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = engine_for("pymysql")  # a row whose scrub overwrites the connection's password
    connector = sqlalchemy_rds_iam.connector(engine)
    driver = _Driver()
    monkeypatch.setattr(engine.dialect, "connect", driver)
    cparams = final_arguments(engine, {})
    connection = connector.connect_once(engine.dialect, [], cparams)
    assert "X-Amz-Signature" in driver.seen["password"]  # the driver did get the token
    assert "password" not in cparams
    assert "X-Amz-Signature" not in str(connection.password or "")


def test_the_hostnames_region_signs_not_the_configured_one(monkeypatch: pytest.MonkeyPatch,
                                                          aws_env: None) -> None:
    """An RDS hostname carries its region: AWS_REGION elsewhere must not change the scope."""
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    engine = engine_for("psycopg2")
    key = sqlalchemy_rds_iam.connector(engine).key()
    assert key.region == "us-east-1"
    token = sign_token(key, CREDENTIALS, now=0)
    credential = parse_qs(urlsplit("https://" + token).query)["X-Amz-Credential"][0]
    assert "/us-east-1/rds-db/aws4_request" in credential
