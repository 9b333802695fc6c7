"""Backoff for a refused fresh token (the IAM throttle): the policy, the loop, the listener.

The policy and the loop run on an injected clock, sleep and random source. The listener is
driven with the drivers' own exception types through a stand-in ``dialect.connect`` that
refuses N times, then against the recording servers of ``tests/fakes.py`` (real drivers,
real TLS): a TLS failure is never retried, an async driver's retries leave its event loop
free.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import ssl
import time
from collections.abc import Iterator
from typing import Any

import asyncpg
import psycopg2
import pymysql
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

import sqlalchemy_rds_iam
from sqlalchemy_rds_iam import ConfigurationError, CredentialsError, InsecureConnectionError
from sqlalchemy_rds_iam.backoff import DEFAULT_BUDGET, DEFAULT_RETRIES, RetryPolicy, retrying
from sqlalchemy_rds_iam.options import parse_options
from sqlalchemy_rds_iam.refusals import worth_retrying
from tests.fakes import Pki, RecordingServer, hostile_servers, make_pki, set_aws_env, signed_tokens

RDS = "db.abcdefghijkl.us-east-1.rds.amazonaws.com"


class FakeTime:
    """A clock that only moves when slept on."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, delay: float) -> None:
        assert delay >= 0
        self.slept.append(delay)
        self.now += delay


def policy(fake: FakeTime, draw: float = 0.999, **kw: Any) -> RetryPolicy:
    return RetryPolicy(clock=fake.clock, random=lambda: draw, **kw)


# -- the policy ---------------------------------------------------------------------------------


def test_defaults_are_on_and_bounded() -> None:
    p = RetryPolicy.from_options(None, None)
    assert (p.retries, p.budget) == (DEFAULT_RETRIES, DEFAULT_BUDGET) and p.enabled
    assert [p.bound(n) for n in range(1, 6)] == [0.25, 0.5, 1.0, 2.0, 2.0]  # capped at 2 s
    assert not RetryPolicy.from_options(0, None).enabled
    assert not RetryPolicy.from_options(None, 0).enabled
    assert list(RetryPolicy.from_options(0, None).delays()) == []


@given(retries=st.integers(0, 20), budget=st.floats(0, 60), draws=st.lists(
    st.floats(0, 1, exclude_max=True), min_size=20, max_size=20))
@settings(max_examples=200, deadline=None)
def test_delays_stay_under_their_caps_and_the_budget(retries: int, budget: float,
                                                     draws: list[float]) -> None:
    fake = FakeTime()
    source = iter(draws)
    p = RetryPolicy(retries=retries, budget=budget, clock=fake.clock, random=lambda: next(source))
    start = fake.now
    delays = []
    for n, delay in enumerate(p.delays(), start=1):
        assert 0 <= delay <= p.bound(n) <= p.cap
        delays.append(delay)
        fake.sleep(delay)
    assert len(delays) <= retries
    assert fake.now - start <= budget + 1e-9


def test_full_jitter_draws_over_the_whole_interval() -> None:
    fake = FakeTime()
    assert list(policy(fake, draw=0.0).delays()) == [0.0] * DEFAULT_RETRIES
    fake = FakeTime()
    high = list(policy(fake, draw=0.5, budget=60).delays())
    assert high == [0.125, 0.25, 0.5, 1.0, 1.0, 1.0][:DEFAULT_RETRIES]


def test_the_budget_cuts_the_last_wait_and_stops_retries() -> None:
    fake = FakeTime()
    delays = []
    for delay in policy(fake, retries=10, budget=1.0).delays():
        delays.append(delay)
        fake.sleep(delay)
        fake.now += 0.1  # each attempt takes time too
    # 0.25 (+0.1), then 0.4995 (+0.1), then cut to what is left of 1.0 s: 0.0505; then none
    assert len(delays) == 3
    assert delays[-1] == pytest.approx(1.0 - 0.2497 - 0.4995 - 0.2, abs=1e-3)


# -- the loop -----------------------------------------------------------------------------------


def refusing(n: int, exc: BaseException) -> Any:
    calls = []

    def attempt() -> str:
        calls.append(1)
        if len(calls) <= n:
            raise exc
        return "connection"

    attempt.calls = calls  # type: ignore[attr-defined]
    return attempt


def mysql_refused() -> pymysql.err.OperationalError:
    return pymysql.err.OperationalError(1045, "Access denied for user 'iamuser'")


@pytest.mark.parametrize("refusals", [0, 1, 3, 4])
def test_retrying_until_accepted(refusals: int) -> None:
    fake = FakeTime()
    attempt = refusing(refusals, mysql_refused())
    announced: list[tuple[int, float]] = []
    result = retrying(policy(fake, budget=60), attempt, lambda e: worth_retrying(e, "mysql"),
                      fake.sleep, lambda n, d: announced.append((n, d)))
    assert result == "connection"
    assert len(attempt.calls) == refusals + 1
    assert [n for n, _ in announced] == list(range(2, refusals + 2))
    assert fake.slept == [d for _, d in announced]


def test_retrying_gives_up_with_the_drivers_own_error() -> None:
    fake = FakeTime()
    refused = mysql_refused()
    attempt = refusing(100, refused)
    with pytest.raises(pymysql.err.OperationalError) as info:
        retrying(policy(fake, budget=60), attempt, lambda e: worth_retrying(e, "mysql"),
                 fake.sleep, lambda n, d: None)
    assert info.value is refused
    assert len(attempt.calls) == DEFAULT_RETRIES + 1


def test_retrying_stops_at_the_budget() -> None:
    fake = FakeTime()
    attempt = refusing(100, mysql_refused())
    with pytest.raises(pymysql.err.OperationalError):
        retrying(policy(fake, retries=20, budget=3.0), attempt,
                 lambda e: worth_retrying(e, "mysql"), fake.sleep, lambda n, d: None)
    assert sum(fake.slept) <= 3.0 + 1e-9
    assert 3 <= len(attempt.calls) < 21


def test_retrying_from_a_first_refusal_already_made() -> None:
    """The listener makes the first attempt itself (so that a successful connect never loads
    this module) and hands its refusal over: the loop goes on from there."""
    fake = FakeTime()
    first = mysql_refused()
    attempt = refusing(1, mysql_refused())
    announced: list[int] = []
    result = retrying(policy(fake, budget=60), attempt, lambda e: worth_retrying(e, "mysql"),
                      fake.sleep, lambda n, d: announced.append(n), refused=first)
    assert result == "connection" and len(attempt.calls) == 2 and announced == [2, 3]


def test_a_first_refusal_not_worth_retrying_is_raised_as_it_is() -> None:
    fake = FakeTime()
    first = ssl.SSLCertVerificationError(1, "certificate verify failed")
    attempt = refusing(0, mysql_refused())
    with pytest.raises(ssl.SSLCertVerificationError) as info:
        retrying(policy(fake), attempt, lambda e: worth_retrying(e, "mysql"), fake.sleep,
                 lambda n, d: None, refused=first)
    assert info.value is first and attempt.calls == [] and fake.slept == []


PG_HBA = asyncpg.exceptions.InvalidAuthorizationSpecificationError(
    'no pg_hba.conf entry for host "10.0.0.1", user "iamuser", database "app", SSL off')
PG_HBA.sqlstate = "28000"  # type: ignore[attr-defined]


@pytest.mark.parametrize(("exc", "family"), [
    (ssl.SSLCertVerificationError(1, "certificate verify failed"), "postgresql"),
    (ConnectionRefusedError(111, "Connection refused"), "postgresql"),
    (ConfigurationError("bad option"), "postgresql"),
    (InsecureConnectionError("no TLS"), "mysql"),
    (CredentialsError("no credentials"), "mysql"),
    (PG_HBA, "postgresql"),
    (pymysql.err.OperationalError(2003, "Can't connect to MySQL server"), "mysql"),
    (psycopg2.OperationalError("SSL error: certificate verify failed"), "postgresql"),
])
def test_what_cannot_succeed_is_not_retried(exc: BaseException, family: str) -> None:
    assert not worth_retrying(exc, family)
    fake = FakeTime()
    attempt = refusing(1, exc)
    with pytest.raises(type(exc)):
        retrying(policy(fake), attempt, lambda e: worth_retrying(e, family), fake.sleep,
                 lambda n, d: None)
    assert len(attempt.calls) == 1 and fake.slept == []


def test_refusals_that_may_be_the_throttle_are_retried() -> None:
    assert worth_retrying(mysql_refused(), "mysql")
    assert worth_retrying(psycopg2.OperationalError(
        'FATAL:  PAM authentication failed for user "iamuser"'), "postgresql")
    refused = asyncpg.exceptions.InvalidPasswordError('PAM authentication failed for user "u"')
    refused.sqlstate = "28P01"  # type: ignore[attr-defined]
    assert worth_retrying(refused, "postgresql")


# -- the options --------------------------------------------------------------------------------


def test_options_parse_and_refuse() -> None:
    parsed = parse_options({"iam_connect_retries": "0", "iam_retry_budget": "2.5"})
    assert (parsed.iam_connect_retries, parsed.iam_retry_budget) == (0, 2.5)
    assert parse_options(keywords={"iam_retry_budget": 3}).iam_retry_budget == 3.0
    for bad in ("-1", "21", "x", "1.5"):
        with pytest.raises(ConfigurationError, match="iam_connect_retries"):
            parse_options({"iam_connect_retries": bad})
    for bad in ("-1", "61", "nan", "inf", "1e3", "", "1.2.3"):
        with pytest.raises(ConfigurationError, match="iam_retry_budget"):
            parse_options({"iam_retry_budget": bad})
    with pytest.raises(ConfigurationError, match="iam_retry_budget"):
        parse_options(keywords={"iam_retry_budget": float("nan")})


def test_the_options_leave_the_url_and_the_doctor_line_stays_short(
        monkeypatch: pytest.MonkeyPatch) -> None:
    set_aws_env(monkeypatch)
    engine = sa.create_engine(f"postgresql+psycopg2://iamuser@{RDS}/app?plugin=rds_iam"
                              "&iam_connect_retries=2&iam_retry_budget=1.5")
    iam = sqlalchemy_rds_iam.connector(engine)
    assert (iam.refusals.retry.retries, iam.refusals.retry.budget) == (2, 1.5)
    assert "iam_" not in str(engine.url)
    default = sqlalchemy_rds_iam.connector(
        sa.create_engine(f"postgresql+psycopg2://iamuser@{RDS}/app?plugin=rds_iam"))
    assert "iam_connect_retries" not in default.doctor_command()


# -- the listener, with a stand-in dialect.connect ---------------------------------------------


class Refuser:
    """``dialect.connect`` that refuses ``n`` logins with the driver's error, then connects."""

    def __init__(self, n: int, exc: BaseException) -> None:
        self.n, self.exc = n, exc
        self.passwords: list[str] = []

    def __call__(self, *cargs: Any, **cparams: Any) -> Any:
        self.passwords.append(cparams["password"])
        if len(self.passwords) <= self.n:
            raise self.exc
        return object()


@pytest.fixture
def quick(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[float]]:
    """No real waiting in the listener: ``time.sleep`` records its delays instead."""
    slept: list[float] = []
    monkeypatch.setattr("sqlalchemy_rds_iam.backoff._blocking_sleep", slept.append)
    yield slept


def _listener(monkeypatch: pytest.MonkeyPatch, query: str = "") -> Any:
    set_aws_env(monkeypatch)
    engine = sa.create_engine(f"mysql+pymysql://iamuser@{RDS.replace('db.', 'my.')}/app"
                              f"?plugin=rds_iam{query}", poolclass=NullPool)
    return engine, sqlalchemy_rds_iam.connector(engine)


def test_listener_retries_a_refused_fresh_token_with_the_same_token(
        monkeypatch: pytest.MonkeyPatch, quick: list[float],
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="sqlalchemy_rds_iam")
    engine, iam = _listener(monkeypatch)
    refuser = Refuser(3, mysql_refused())
    cparams = dict(engine.dialect.create_connect_args(engine.url)[1])
    engine.dialect.connect = refuser  # type: ignore[method-assign]
    iam.connect(engine.dialect, [], cparams)
    assert len(refuser.passwords) == 4 and len(set(refuser.passwords)) == 1  # one token
    assert len(quick) == 3 and all(0 <= d <= 2.0 for d in quick)
    lines = [r.getMessage() for r in caplog.records if "attempt" in r.getMessage()]
    assert [line.split("attempt ")[1][:11] for line in lines] == [
        "2 of at mos", "3 of at mos", "4 of at mos"]
    assert all(r.levelno == logging.INFO for r in caplog.records if "attempt" in r.getMessage())
    token = refuser.passwords[0]
    assert token not in caplog.text and "X-Amz-Signature" not in caplog.text


def test_listener_note_counts_the_attempts(monkeypatch: pytest.MonkeyPatch,
                                           quick: list[float]) -> None:
    engine, iam = _listener(monkeypatch, "&iam_connect_retries=2")
    engine.dialect.connect = Refuser(100, mysql_refused())  # type: ignore[method-assign]
    with pytest.raises(pymysql.err.OperationalError) as info:
        iam.connect(engine.dialect, [], dict(engine.dialect.create_connect_args(engine.url)[1]))
    (note,) = info.value.__notes__  # type: ignore[attr-defined]
    assert "(3 attempts: a freshly signed one, tried 3 times; iam_connect_retries=2" in note
    assert len(quick) == 2


def test_listener_cached_token_then_fresh_then_backoff(monkeypatch: pytest.MonkeyPatch,
                                                       quick: list[float]) -> None:
    engine, iam = _listener(monkeypatch, "&iam_connect_retries=1")
    stale = iam.token()  # cached
    signed = signed_tokens(iam)
    refuser = Refuser(100, mysql_refused())
    engine.dialect.connect = refuser  # type: ignore[method-assign]
    with pytest.raises(pymysql.err.OperationalError) as info:
        iam.connect(engine.dialect, [], dict(engine.dialect.create_connect_args(engine.url)[1]))
    assert refuser.passwords[0] == stale and len(refuser.passwords) == 3
    assert len(signed) == 1 and refuser.passwords[1] == refuser.passwords[2] == signed[0]
    (note,) = info.value.__notes__  # type: ignore[attr-defined]
    assert "(3 attempts: a cached token, then a freshly signed one, tried 2 times;" in note


class FreshRefusals(Refuser):
    """A new exception object for every refusal, as a driver raises them."""

    def __call__(self, *cargs: Any, **cparams: Any) -> Any:
        self.passwords.append(cparams["password"])
        if len(self.passwords) <= self.n:
            raise mysql_refused()
        return object()


def test_the_last_refusal_does_not_chain_to_the_first(monkeypatch: pytest.MonkeyPatch,
                                                      quick: list[float]) -> None:
    """The listener hands the first refusal to the policy outside its ``except`` block: the
    error that surfaces is the driver's last one, with no "during handling of the above
    exception" chain through every earlier refusal (cached token, then fresh ones)."""
    engine, iam = _listener(monkeypatch, "&iam_connect_retries=2")
    iam.token()  # cached, so the cached-token step runs too
    refuser = FreshRefusals(100, mysql_refused())
    engine.dialect.connect = refuser  # type: ignore[method-assign]
    with pytest.raises(pymysql.err.OperationalError) as info:
        iam.connect(engine.dialect, [], dict(engine.dialect.create_connect_args(engine.url)[1]))
    assert len(refuser.passwords) == 4
    assert info.value.__context__ is None and info.value.__cause__ is None


def test_retries_off_is_one_attempt(monkeypatch: pytest.MonkeyPatch,
                                    quick: list[float]) -> None:
    engine, iam = _listener(monkeypatch, "&iam_connect_retries=0")
    refuser = Refuser(1, mysql_refused())
    engine.dialect.connect = refuser  # type: ignore[method-assign]
    with pytest.raises(pymysql.err.OperationalError) as info:
        iam.connect(engine.dialect, [], dict(engine.dialect.create_connect_args(engine.url)[1]))
    assert len(refuser.passwords) == 1 and quick == []
    assert "(1 attempt: a freshly signed one;" in info.value.__notes__[0]  # type: ignore[attr-defined]


# -- real drivers against recording servers -----------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("backoff-pki"))


def _url(driver: str, server: RecordingServer, pki: Pki, query: str) -> str:
    family = "postgresql" if server.protocol == "postgresql" else "mysql"
    return (f"{family}+{driver}://iamuser@localhost:{server.port}/app?plugin=rds_iam"
            f"&aws_region=us-east-1&iam_ca_bundle={pki.ca}{query}")


@pytest.mark.parametrize("kind", ["self-signed", "wrong-host", "plain"])
@pytest.mark.parametrize(("driver", "protocol"), [("pymysql", "mysql"), ("pg8000", "postgresql")])
def test_a_tls_failure_is_never_retried(pki: Pki, kind: str, driver: str, protocol: str,
                                        monkeypatch: pytest.MonkeyPatch,
                                        quick: list[float]) -> None:
    set_aws_env(monkeypatch)
    with hostile_servers(protocol, pki) as servers:
        server = servers[kind]
        engine = sa.create_engine(_url(driver, server, pki, ""), poolclass=NullPool)
        with pytest.raises(Exception):  # noqa: B017 (pg8000: ssl errors come unwrapped)
            engine.connect()
        server.take()
        assert server.connections == 1 and quick == []
        valid = servers["valid"]  # the positive control: refused logins there are retried
        engine = sa.create_engine(_url(driver, valid, pki, "&iam_connect_retries=2"),
                                  poolclass=NullPool)
        with pytest.raises(Exception):  # noqa: B017 (pg8000: ssl errors come unwrapped)
            engine.connect()
        valid.take()
        assert valid.connections == 3 and len(quick) == 2


@pytest.mark.parametrize(("driver", "protocol"), [("asyncpg", "postgresql"),
                                                  ("aiomysql", "mysql")])
def test_async_drivers_wait_without_blocking_the_loop(pki: Pki, driver: str, protocol: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    set_aws_env(monkeypatch)

    def no_blocking_sleep(delay: float) -> None:
        raise AssertionError("time.sleep in an async engine's connect")

    monkeypatch.setattr("sqlalchemy_rds_iam.backoff._blocking_sleep", no_blocking_sleep)
    with hostile_servers(protocol, pki) as servers:
        valid = servers["valid"]
        url = _url(driver, valid, pki, "&iam_connect_retries=3&iam_retry_budget=2")

        async def run() -> list[float]:
            engine = create_async_engine(url, poolclass=NullPool)
            iam = sqlalchemy_rds_iam.connector(engine)
            iam.refusals.retry = RetryPolicy(retries=3, budget=2, random=lambda: 0.999)
            ticks: list[float] = []

            async def ticker() -> None:
                while True:
                    ticks.append(time.monotonic())
                    await asyncio.sleep(0.01)

            task = asyncio.create_task(ticker())
            try:
                with pytest.raises(Exception) as info:
                    async with engine.connect():
                        pass
                assert "4 attempts" in str(getattr(info.value, "__notes__", ""))
            finally:
                task.cancel()
                await engine.dispose()
            return ticks

        began = time.monotonic()
        ticks = asyncio.run(run())
        took = time.monotonic() - began
        valid.take()
        assert valid.connections == 4
        assert took >= 0.25 + 0.5 + 1.0 - 0.05  # the waits happened (0.999 of each bound)
        gaps = [b - a for a, b in itertools.pairwise(ticks)]
        assert len(ticks) > 50 and max(gaps) < 0.5  # the loop ran while the connect waited
