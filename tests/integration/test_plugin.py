"""The core plugin against real servers that verify every token (the local emulator)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

import sqlalchemy_rds_iam
from sqlalchemy_rds_iam import InsecureConnectionError
from sqlalchemy_rds_iam.testing.info import EmulatorInfo
from tests.fakes import signed_tokens

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("rds_iam_aws_env")]

WHO = {"postgresql": "SELECT current_user", "mysql": "SELECT SUBSTRING_INDEX(USER(), '@', 1)"}


@pytest.mark.parametrize("server", ["postgresql", "mysql", "pgbouncer"])
def test_url_plugin_opens_three_verified_connections(rds_iam_emulator: EmulatorInfo, server: str,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="sqlalchemy_rds_iam")
    info = rds_iam_emulator.servers[server]
    offset = info.log_offset()
    engine = sa.create_engine(info.url("iamuser"), poolclass=NullPool)
    assert "plugin" not in engine.url.query and "aws_region" not in engine.url.query
    for _ in range(3):
        with engine.connect() as conn:
            assert conn.execute(sa.text(WHO[info.dialect])).scalar() == "iamuser"
    token = sqlalchemy_rds_iam.connector(engine).token()
    decisions = info.verifications(offset, token=token)
    assert [(d.ok, d.user) for d in decisions] == [(True, "iamuser")] * 3
    # three logins, one signature: the cached token was reused
    assert caplog.text.count("signed IAM token") == 1


@pytest.mark.parametrize("server", ["postgresql", "mysql"])
def test_pool_keeps_working_across_a_token_refresh(rds_iam_emulator: EmulatorInfo, server: str,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="sqlalchemy_rds_iam")
    info = rds_iam_emulator.servers[server]
    engine = sa.create_engine(info.url(), poolclass=NullPool)
    connector = sqlalchemy_rds_iam.connector(engine)
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT 1"))
    real_clock = connector.cache.clock
    connector.cache.clock = lambda: real_clock() + 11 * 60  # past the reuse window
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT 1"))
    # signed again (the text may equal the first one within the same second)
    assert caplog.text.count("signed IAM token") == 2


def test_attach_on_a_plain_engine(rds_iam_emulator: EmulatorInfo) -> None:
    info = rds_iam_emulator.postgresql
    engine = sa.create_engine(info.url("iamuser2", plugin=False), pool_size=2)
    sqlalchemy_rds_iam.attach(engine, aws_region=rds_iam_emulator.region, iam_ca_bundle=info.ca_path)
    offset = info.log_offset()
    with engine.connect() as a, engine.connect() as b:
        assert a.execute(sa.text("SELECT current_user")).scalar() == "iamuser2"
        assert b.execute(sa.text("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")).scalar()
    token = sqlalchemy_rds_iam.connector(engine).token()
    assert [d.ok for d in info.verifications(offset, token=token)] == [True, True]


@pytest.mark.parametrize(("server", "query"), [("postgresql", {"sslmode": "disable"}),
                                               ("postgresql", {"sslmode": "prefer"}),
                                               ("mysql", {"ssl_disabled": "true"})])
def test_plaintext_is_refused_before_connecting(rds_iam_emulator: EmulatorInfo, server: str,
                                                query: dict[str, str]) -> None:
    info = rds_iam_emulator.servers[server]
    offset = info.log_offset()
    with pytest.raises(InsecureConnectionError):
        sa.create_engine(info.url(**query))
    assert info.verifications(offset) == []


def test_wrong_ca_fails_the_handshake_not_the_login(rds_iam_emulator: EmulatorInfo) -> None:
    info = rds_iam_emulator.postgresql
    from sqlalchemy_rds_iam.cabundle import SHIPPED_CA_BUNDLE

    engine = sa.create_engine(info.url(iam_ca_bundle=str(SHIPPED_CA_BUNDLE)), poolclass=NullPool)
    signed = signed_tokens(sqlalchemy_rds_iam.connector(engine))
    offset = info.log_offset()
    with pytest.raises(sa.exc.OperationalError, match="certificate verify failed"):
        engine.connect()
    (token,) = signed  # one was signed for this attempt...
    assert info.verifications(offset, token=token) == []  # ...and never reached the server


@pytest.mark.parametrize("server", ["postgresql", "mysql"])
def test_no_token_in_logs_echo_or_errors(rds_iam_emulator: EmulatorInfo, server: str,
                                         caplog: pytest.LogCaptureFixture,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    caplog.set_level(logging.DEBUG)  # root: botocore, sqlalchemy, drivers, ours
    info = rds_iam_emulator.servers[server]
    sent: list[str] = []

    def recording(engine: sa.Engine) -> None:
        """Our listener connects through dialect.connect(): record the token it passes."""
        real = engine.dialect.connect

        def connect(*cargs: Any, **cparams: Any) -> Any:
            sent.append(cparams.get("password", ""))  # the token on the wire
            return real(*cargs, **cparams)

        engine.dialect.connect = connect  # type: ignore[method-assign]

    good = sa.create_engine(info.url(), echo=True, echo_pool="debug", poolclass=NullPool)
    recording(good)
    with good.connect() as conn:
        conn.execute(sa.text("SELECT 1"))
    # A failed login: the restricted identity may only connect as iamuser2.
    restricted = rds_iam_emulator.identities["restricted"]
    import boto3

    session = boto3.Session(aws_access_key_id=restricted.access_key_id,
                            aws_secret_access_key=restricted.secret_access_key,
                            aws_session_token=restricted.session_token)
    bad = sa.create_engine(info.url(plugin=False), echo=True, echo_pool="debug", poolclass=NullPool)
    sqlalchemy_rds_iam.attach(bad, aws_region=rds_iam_emulator.region, iam_ca_bundle=info.ca_path,
                              boto3_session=session)
    recording(bad)
    offset = info.log_offset()
    with pytest.raises(sa.exc.OperationalError) as failure:
        bad.connect()
    assert [d.code for d in info.verifications(offset, token=sent[-1])] == ["policy"]

    tokens = sent
    captured = capsys.readouterr()
    shown = "\n".join([caplog.text, captured.out, captured.err, str(failure.value),
                       repr(failure.value), repr(good), str(good.url), repr(bad)])
    assert "signed IAM token" in caplog.text and "Created new connection" in shown
    for token in tokens:
        signature = token.rsplit("X-Amz-Signature=", 1)[1]
        assert token not in shown and signature not in shown


@pytest.mark.parametrize("server", ["postgresql", "mysql"])
def test_a_refused_token_is_not_offered_again(rds_iam_emulator: EmulatorInfo, server: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Clock skew: the first token is signed 16 minutes in the past and refused as expired;
    the cache must not hand it out again."""
    import datetime

    import botocore.auth

    from sqlalchemy_rds_iam import sigv4

    info = rds_iam_emulator.servers[server]
    engine = sa.create_engine(info.url(), poolclass=NullPool)
    skewed = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None) - datetime.timedelta(minutes=16)
    with monkeypatch.context() as patch:
        # Both signers: botocore's, and the standard-library one that environment credentials use.
        patch.setattr(botocore.auth, "get_current_datetime", lambda *a, **k: skewed)
        patch.setattr(sigv4, "clock", lambda: skewed.replace(tzinfo=datetime.timezone.utc).timestamp())
        with pytest.raises(sa.exc.OperationalError):
            engine.connect()
    stale = sqlalchemy_rds_iam.connector(engine).cache.peek(sqlalchemy_rds_iam.connector(engine).key())
    assert stale is None
    offset = info.log_offset()
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT 1")).scalar() == 1
    assert [d.ok for d in info.verifications(offset) if d.user == "iamuser"] == [True]
