"""Assumed roles (moto's STS on loopback), a callable provider, rotation, credential errors."""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
import sqlalchemy as sa

import sqlalchemy_rds_iam
from sqlalchemy_rds_iam import ConfigurationError, CredentialsError
from sqlalchemy_rds_iam.cli import main
from sqlalchemy_rds_iam.credentials import CallableSource
from sqlalchemy_rds_iam.options import parse_options
from tests.fakes import driver_arguments, moto_server, set_aws_env

RDS = "db.cluster-abc123.us-east-1.rds.amazonaws.com"
PG = f"postgresql+psycopg2://iamuser@{RDS}/app"
SOURCE_KEY, SOURCE_SECRET = "AKIDSOURCEEXAMPLE", "source-secret"
ROLE = "arn:aws:iam::123456789012:role/db-connect"


def signing_key(token: str) -> str:
    """The access key a token was signed with (X-Amz-Credential's first part)."""
    query = parse_qs(token.split("?", 1)[1])
    return query["X-Amz-Credential"][0].split("/")[0]


def cparams_of(engine: Any) -> dict[str, Any]:
    return driver_arguments(engine)


@pytest.fixture
def source_env(monkeypatch: pytest.MonkeyPatch) -> None:
    set_aws_env(monkeypatch, SOURCE_KEY, SOURCE_SECRET)


@pytest.fixture
def sts(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """moto's STS and IAM in server mode on loopback, found through AWS_ENDPOINT_URL_STS."""
    with moto_server(monkeypatch, "sts", "iam") as endpoint:
        yield endpoint


# --- options ------------------------------------------------------------------------------

def test_role_options_parse_from_the_url_and_keywords() -> None:
    options = parse_options({"aws_role_arn": ROLE, "aws_role_session_name": "app",
                             "aws_external_id": "xyz", "aws_role_duration": "3600"})
    assert (options.aws_role_arn, options.aws_role_session_name, options.aws_role_duration) == (
        ROLE, "app", 3600)
    assert "xyz" not in repr(options)  # the external id is a shared secret of sorts
    assert parse_options(keywords={"aws_role_arn": ROLE, "aws_role_duration": 900}).aws_role_duration == 900


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"aws_role_arn": "db-connect"}, "not a role ARN"),
        ({"aws_role_session_name": "x"}, "needs aws_role_arn"),
        ({"aws_role_arn": ROLE, "aws_role_duration": "60"}, "between 900 and 43200"),
        ({"credentials_provider": "x"}, "cannot be a URL parameter"),
    ],
)
def test_role_option_mistakes(query: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        parse_options(query)


def test_credentials_provider_is_keyword_only_and_exclusive() -> None:
    def provider() -> tuple[str, str]:
        return ("AKID", "secret")

    assert parse_options(keywords={"credentials_provider": provider}).credentials_provider is provider
    with pytest.raises(ConfigurationError, match="must be a callable"):
        parse_options(keywords={"credentials_provider": "AKID"})
    with pytest.raises(ConfigurationError, match="not both"):
        parse_options({"aws_role_arn": ROLE}, {"credentials_provider": provider})


# --- assumed roles against moto's STS -----------------------------------------------------

@pytest.mark.usefixtures("source_env", "sts")
def test_engine_signs_with_the_assumed_role_not_the_source() -> None:
    engine = sa.create_engine(f"{PG}?plugin=rds_iam&aws_role_arn={ROLE}&aws_role_session_name=app"
                              "&aws_external_id=ext&aws_role_duration=3600")
    token = cparams_of(engine)["password"]
    key = signing_key(token)
    assert key != SOURCE_KEY and key.startswith("ASIA")
    assert "X-Amz-Security-Token=" in token  # a role session's token
    credentials = sqlalchemy_rds_iam.connector(engine).source.frozen()
    assert credentials.access_key == key and credentials.expiry is not None
    assert 3500 < credentials.expiry - datetime.datetime.now().timestamp() <= 3600


@pytest.mark.usefixtures("source_env", "sts")
def test_attach_takes_role_keywords() -> None:
    engine = sa.create_engine(PG)
    sqlalchemy_rds_iam.attach(engine, aws_role_arn=ROLE, aws_role_duration=900)
    assert signing_key(cparams_of(engine)["password"]).startswith("ASIA")


@pytest.mark.usefixtures("source_env", "sts")
def test_role_session_refreshes_near_expiry_and_the_next_connection_uses_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """botocore's clock is moved past the session's refresh window: the next new connection
    signs with the new session's key (the cached token is not offered again)."""
    import botocore.credentials

    engine = sa.create_engine(f"{PG}?plugin=rds_iam&aws_role_arn={ROLE}&aws_role_duration=3600")
    connector = sqlalchemy_rds_iam.connector(engine)
    first = signing_key(cparams_of(engine)["password"])
    assert signing_key(cparams_of(engine)["password"]) == first  # cached

    later = botocore.credentials._local_now() + datetime.timedelta(seconds=3600 - 5 * 60)
    source: Any = connector.source
    source.clock = lambda: later  # 5 minutes left: inside botocore's mandatory refresh window
    monkeypatch.setattr(botocore.credentials, "_local_now", lambda: later)  # the fetcher's cache
    connector.cache.clock = lambda: later.timestamp()
    second = signing_key(cparams_of(engine)["password"])
    assert second != first and second.startswith("ASIA")
    assert signing_key(cparams_of(engine)["password"]) == second  # and that one is cached


@pytest.mark.usefixtures("source_env", "sts")
def test_sts_access_denied_is_a_credentials_error(sts: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """moto enforces IAM once INITIAL_NO_AUTH_ACTION_COUNT is reached: a user without
    sts:AssumeRole permission is refused, as AWS would."""
    import boto3
    import moto.settings

    iam = boto3.client("iam", region_name="us-east-1", aws_access_key_id="x",
                       aws_secret_access_key="x")
    iam.create_user(UserName="nobody")
    key = iam.create_access_key(UserName="nobody")["AccessKey"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    monkeypatch.setattr(moto.settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)
    engine = sa.create_engine(f"{PG}?plugin=rds_iam&aws_role_arn={ROLE}")
    with pytest.raises(CredentialsError) as caught:
        cparams_of(engine)
    message = str(caught.value)
    assert ROLE in message and "AccessDenied" in message and "sts:AssumeRole" in message


@pytest.mark.usefixtures("source_env")
def test_unreachable_sts_is_a_credentials_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    engine = sa.create_engine(f"{PG}?plugin=rds_iam&aws_role_arn={ROLE}")
    with pytest.raises(CredentialsError, match=r"role .*db-connect assumed with the default"):
        cparams_of(engine)


# --- a callable provider ------------------------------------------------------------------

def test_callable_provider_signs_and_is_asked_again_when_rotated() -> None:
    keys = ["AKIDFIRST"]
    calls = []

    def provider() -> tuple[str, str]:
        calls.append(1)
        return (keys[-1], "secret")

    engine = sa.create_engine(PG)
    connector = sqlalchemy_rds_iam.attach(engine, credentials_provider=provider)
    assert signing_key(cparams_of(engine)["password"]) == "AKIDFIRST"
    assert signing_key(cparams_of(engine)["password"]) == "AKIDFIRST"
    assert len(calls) == 1  # a cached token needs no credentials
    keys.append("AKIDSECOND")
    # the server refused the old token (credentials retired): the connect failed, so the
    # listener dropped the token and the next connection asks the provider again
    connector.on_error(type("Ctx", (), {"connection": None})())
    assert signing_key(cparams_of(engine)["password"]) == "AKIDSECOND"


def test_callable_provider_with_expiry_is_refreshed_by_botocore() -> None:
    now = datetime.datetime.now(datetime.timezone.utc)
    issued = []

    def provider() -> tuple[str, str, str, datetime.datetime]:
        issued.append(f"ASIAKEY{len(issued)}")
        return (issued[-1], "secret", "session", now + datetime.timedelta(hours=1))

    source = CallableSource(provider)
    assert source.frozen().access_key == "ASIAKEY0"
    assert source.frozen().access_key == "ASIAKEY0"
    assert source.access_key_hint() == "ASIAKEY0"
    source.clock = lambda: now + datetime.timedelta(minutes=55)  # botocore's mandatory window
    assert source.frozen().access_key == "ASIAKEY1"
    assert source.access_key_hint() == "ASIAKEY1"


@pytest.mark.parametrize(
    ("returned", "message"),
    [
        (("AKID",), "must return"),
        (("AKID", ""), "must return"),
        (("AKID", "s", None, datetime.datetime(2030, 1, 1)), "naive"),
        (("AKID", "s", None, "tomorrow"), "expiry must be"),
    ],
)
def test_callable_provider_mistakes_are_credentials_errors(returned: tuple[Any, ...], message: str) -> None:
    with pytest.raises(CredentialsError, match=message):
        CallableSource(lambda: returned).frozen()


def test_callable_provider_exception_is_a_credentials_error() -> None:
    def broken() -> tuple[str, str]:
        raise RuntimeError("vault unreachable")

    with pytest.raises(CredentialsError, match="credentials_provider raised RuntimeError: vault"):
        CallableSource(broken).frozen()


# --- rotation: a shared botocore credential object changes under a live engine ------------

def test_next_connection_signs_with_rotated_credentials() -> None:
    """A boto3 session shared with the app: once its credentials change (a refresh done by
    any client), the next new connection signs with the new key, not the cached token."""
    import boto3

    session = boto3.Session(aws_access_key_id="AKIDOLD", aws_secret_access_key="s",
                            region_name="us-east-1")
    engine = sa.create_engine(PG)
    sqlalchemy_rds_iam.attach(engine, boto3_session=session)
    assert signing_key(cparams_of(engine)["password"]) == "AKIDOLD"
    credentials = session._session.get_credentials()
    credentials.access_key = "AKIDNEW"  # what a refresh or rotation does to the shared object
    assert signing_key(cparams_of(engine)["password"]) == "AKIDNEW"


# --- credential errors: profiles, config files, the CLI ----------------------------------

CNAME = "postgresql+psycopg2://iamuser@db.example.com/app"


@pytest.mark.parametrize("url", [f"{CNAME}?plugin=rds_iam", f"{PG}?plugin=rds_iam"])
def test_missing_profile_in_aws_profile_is_a_credentials_error(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_PROFILE", "nope")
    engine = sa.create_engine(url)
    with pytest.raises(CredentialsError, match=r"AWS_PROFILE='nope'.*ProfileNotFound.*fix aws_profile"):
        with engine.connect():
            pass


@pytest.mark.parametrize("url", [f"{CNAME}?plugin=rds_iam", f"{PG}?plugin=rds_iam"])
def test_missing_profile_option_is_a_credentials_error(url: str) -> None:
    engine = sa.create_engine(url + "&aws_profile=nope")
    with pytest.raises(CredentialsError, match=r"profile 'nope'.*ProfileNotFound"):
        with engine.connect():
            pass


def test_malformed_config_file_is_a_credentials_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "config"
    config.write_text("[default\nregion = us-east-1\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    engine = sa.create_engine(f"{CNAME}?plugin=rds_iam")
    with pytest.raises(CredentialsError, match=r"ConfigParseError.*fix the syntax"):
        with engine.connect():
            pass


def test_cli_token_prints_one_line_and_exits_with_the_credentials_code(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_PROFILE", "nope")
    assert main(["token", f"{CNAME}"]) == 4
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(captured.err.strip().splitlines()) == 1 and "ProfileNotFound" in captured.err


def test_cli_doctor_json_reports_the_credentials_step(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_PROFILE", "nope")
    for url in (CNAME, PG):
        assert main(["doctor", "--json", url]) == 4
        report = json.loads(capsys.readouterr().out)
        assert report["failed_step"] == "credentials"
        assert "ProfileNotFound" in report["steps"][-1]["detail"]
