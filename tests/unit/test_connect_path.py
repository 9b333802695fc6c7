"""The connect path offline, through a stand-in driver: retry decision, scrub, region rule.

The driver is a stand-in ``dialect.connect(*cargs, **cparams)`` (the interface the listener
calls) that refuses logins with PyMySQL's own error, or fails the way a TLS handshake or a
closed port fails; no server, no mock objects. Each test pins a decision that a hand-made
mutant once changed with only the integration tests noticing (issue 17): a refused cached
token is replaced once (not never, not twice) by a freshly signed one and a TLS failure
never; the token leaves SQLAlchemy's argument dict after every login; the hostname's region
signs, the configuration's only where the name says none, and "no region" is the
credentials layer's error.
"""

from __future__ import annotations

import ssl
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pymysql
import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

import sqlalchemy_rds_iam
from sqlalchemy_rds_iam import RegionError
from sqlalchemy_rds_iam.credentials.base import region_for
from sqlalchemy_rds_iam.plugin import IamConnector
from tests.fakes import set_aws_env, signed_tokens

RDS = "my.cluster-abc123.us-east-1.rds.amazonaws.com"


def refused() -> pymysql.err.OperationalError:
    return pymysql.err.OperationalError(1045, "Access denied for user 'iamuser'")


class Connection:
    """A driver connection that, like PyMySQL's, keeps the password it logged in with."""

    def __init__(self, password: str) -> None:
        self.password = password


class Driver:
    """``dialect.connect``: fails the first ``failures`` logins with ``exc``, then connects."""

    def __init__(self, failures: int = 0, exc: BaseException | None = None) -> None:
        self.failures, self.exc = failures, exc or refused()
        self.passwords: list[str] = []

    def __call__(self, *cargs: Any, **cparams: Any) -> Connection:
        self.passwords.append(cparams["password"])
        if len(self.passwords) <= self.failures:
            raise self.exc
        return Connection(cparams["password"])


def engine_with(driver: Driver, query: str = "", host: str = RDS) -> tuple[sa.Engine, IamConnector]:
    engine = sa.create_engine(f"mysql+pymysql://iamuser@{host}/app?plugin=rds_iam{query}",
                              poolclass=NullPool)
    engine.dialect.connect = driver  # type: ignore[method-assign]
    return engine, sqlalchemy_rds_iam.connector(engine)


def listen(engine: sa.Engine, iam: IamConnector, cparams: dict[str, Any]) -> Any:
    """One ``do_connect`` event, as SQLAlchemy fires it."""
    return iam(engine.dialect, None, [], cparams)


def arguments(engine: sa.Engine) -> dict[str, Any]:
    return dict(engine.dialect.create_connect_args(engine.url)[1])


# -- the retry decision ---------------------------------------------------------------------


@pytest.mark.usefixtures("aws_env")
def test_a_refused_cached_token_is_replaced_by_one_freshly_signed() -> None:
    driver = Driver(failures=1)
    engine, iam = engine_with(driver, "&iam_connect_retries=0")
    stale = iam.token()  # in the cache: signed by credentials the server may no longer know
    signed = signed_tokens(iam)
    connection = listen(engine, iam, arguments(engine))
    assert len(signed) == 1 and driver.passwords == [stale, signed[0]]
    assert iam.cache.peek(iam.key()) == signed[0]  # the fresh one is kept, the stale one gone
    assert isinstance(connection, Connection)


@pytest.mark.usefixtures("aws_env")
def test_a_refused_fresh_token_after_a_cached_one_is_not_replaced_again() -> None:
    """With backoff off, two attempts: the cached token, then one freshly signed; no third."""
    driver = Driver(failures=100)
    engine, iam = engine_with(driver, "&iam_connect_retries=0")
    stale = iam.token()
    signed = signed_tokens(iam)
    with pytest.raises(pymysql.err.OperationalError) as info:
        listen(engine, iam, arguments(engine))
    assert len(signed) == 1 and driver.passwords == [stale, signed[0]]
    (note,) = info.value.__notes__  # type: ignore[attr-defined]
    assert "(2 attempts: a cached token, then a freshly signed one; iam_connect_retries=0" in note
    assert iam.cache.peek(iam.key()) is None  # the refused fresh token is not offered again


@pytest.mark.usefixtures("aws_env")
def test_a_refused_fresh_token_alone_is_one_attempt_with_backoff_off() -> None:
    driver = Driver(failures=100)
    engine, iam = engine_with(driver, "&iam_connect_retries=0")
    signed = signed_tokens(iam)
    with pytest.raises(pymysql.err.OperationalError) as info:
        listen(engine, iam, arguments(engine))
    assert driver.passwords == signed and len(signed) == 1
    assert "(1 attempt: a freshly signed one;" in info.value.__notes__[0]  # type: ignore[attr-defined]


@pytest.mark.parametrize("exc", [
    ssl.SSLCertVerificationError(1, "certificate verify failed: self-signed certificate"),
    ConnectionRefusedError(111, "Connection refused"),
    pymysql.err.OperationalError(2003, "Can't connect to MySQL server"),
], ids=["tls", "tcp", "not-a-refusal"])
@pytest.mark.usefixtures("aws_env")
def test_a_tls_or_network_failure_is_never_retried(exc: BaseException) -> None:
    driver = Driver(failures=100, exc=exc)
    engine, iam = engine_with(driver)  # default backoff: 6 retries, were any allowed
    cached = iam.token()
    signed = signed_tokens(iam)
    with pytest.raises(type(exc)) as info:
        listen(engine, iam, arguments(engine))
    assert driver.passwords == [cached] and signed == []
    assert not getattr(info.value, "__notes__", None)  # no refusal note: it was no refusal


# -- the token leaves the arguments ---------------------------------------------------------


@pytest.mark.parametrize("failures", [0, 100])
@pytest.mark.usefixtures("aws_env")
def test_the_token_leaves_the_argument_dict_after_every_login(failures: int) -> None:
    """SQLAlchemy 2.0 keeps this dict for the engine's lifetime: no token may stay in it."""
    driver = Driver(failures=failures)
    engine, iam = engine_with(driver, "&iam_connect_retries=0")
    cparams = arguments(engine)
    try:
        connection = listen(engine, iam, cparams)
    except pymysql.err.OperationalError:
        connection = None
    assert driver.passwords and all("X-Amz-Signature=" in p for p in driver.passwords)
    assert "password" not in cparams
    assert not any(p in repr(cparams) for p in driver.passwords)
    if connection is not None:  # and the driver's connection no longer holds it
        assert connection.password != driver.passwords[-1]


# -- the region -------------------------------------------------------------------------------


def _scope(token: str) -> str:
    return parse_qs(urlsplit("https://" + token).query)["X-Amz-Credential"][0].split("/", 1)[1]


def test_the_hostnames_region_signs_what_the_driver_gets(monkeypatch: pytest.MonkeyPatch) -> None:
    set_aws_env(monkeypatch)
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.setenv(name, "eu-west-1")
    driver = Driver()
    engine, iam = engine_with(driver)
    listen(engine, iam, arguments(engine))
    (token,) = driver.passwords
    assert _scope(token).split("/")[1:3] == ["us-east-1", "rds-db"]
    assert iam.key().region == "us-east-1"


def test_a_name_without_a_region_signs_in_the_configured_one(
        monkeypatch: pytest.MonkeyPatch) -> None:
    set_aws_env(monkeypatch)
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    driver = Driver()
    engine, iam = engine_with(driver, host="db.internal.example")
    assert iam.target.region is None  # not known at create_engine: the configuration's, later
    listen(engine, iam, arguments(engine))
    (token,) = driver.passwords
    assert _scope(token).split("/")[1:3] == ["eu-west-1", "rds-db"]


@pytest.mark.usefixtures("aws_env")
def test_no_region_is_the_credentials_layers_error_at_first_use() -> None:
    driver = Driver()
    engine, iam = engine_with(driver, host="db.internal.example")  # create_engine: fine
    message = "no AWS region for db.internal.example: it is not an RDS hostname"
    with pytest.raises(RegionError, match=message):
        region_for("db.internal.example", iam.source)
    with pytest.raises(RegionError, match=message):
        listen(engine, iam, arguments(engine))
    assert driver.passwords == []  # nothing was sent


# -- one record, arguments read once ---------------------------------------------------------


@pytest.mark.usefixtures("aws_env")
def test_the_documented_attributes_are_the_targets_fields() -> None:
    _, iam = engine_with(Driver(), "&iam_tls=verify-ca&iam_port=3307")
    target = iam.target
    assert (iam.user, iam.host, iam.port, iam.region, iam.ca_bundle, iam.tls_mode) == (
        target.user, target.host, target.port, target.region, target.ca_bundle, target.tls_mode)
    assert iam.key() == target.key(lambda: "unused")
    with pytest.raises(AttributeError):
        iam.port = 1  # type: ignore[misc]  # read-only: the target is the one record


@pytest.mark.usefixtures("aws_env")
def test_attach_reads_the_engines_connect_arguments_once_without_the_url_again() -> None:
    engine = sa.create_engine(f"mysql+pymysql://iamuser@{RDS}/app",
                              connect_args={"ssl": {"ca": "/nonexistent/ca.pem"}})
    calls: list[object] = []
    real = engine.dialect.create_connect_args

    def counting(url: Any) -> Any:
        calls.append(url)
        return real(url)

    engine.dialect.create_connect_args = counting  # type: ignore[method-assign]
    # the connect_args reached the check (only the engine's creator holds them)...
    with pytest.raises(sqlalchemy_rds_iam.InsecureConnectionError, match=r"ca\.pem"):
        sqlalchemy_rds_iam.attach(engine)
    assert calls == []  # ...and the URL was not read a second time
