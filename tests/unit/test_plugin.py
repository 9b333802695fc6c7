"""The plugin's SQLAlchemy contract, offline: URL handling, early errors, the listener's effect."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import sqlalchemy as sa

import sqlalchemy_rds_iam
from sqlalchemy_rds_iam import ConfigurationError, InsecureConnectionError, UnsupportedDriverError
from sqlalchemy_rds_iam.cabundle import bundle_path
from sqlalchemy_rds_iam.plugin import RdsIamPlugin
from sqlalchemy_rds_iam.tls import ssl_context
from tests.fakes import driver_arguments

RDS = "db.cluster-abc123.us-east-1.rds.amazonaws.com"
PG = f"postgresql+psycopg2://iamuser@{RDS}/app"
MY = f"mysql+pymysql://iamuser@{RDS}/app"



def test_entry_point_is_installed() -> None:
    from importlib.metadata import entry_points

    (ep,) = [ep for ep in entry_points(group="sqlalchemy.plugins") if ep.name == "rds_iam"]
    assert ep.load() is RdsIamPlugin


def test_url_option_strips_its_parameters() -> None:
    engine = sa.create_engine(f"{PG}?plugin=rds_iam&aws_region=us-east-1&iam_tls=verify-ca"
                              "&iam_port=5432&application_name=x")
    assert dict(engine.url.query) == {"application_name": "x"}
    assert sqlalchemy_rds_iam.connector(engine).target.tls_mode == "verify-ca"


def test_plugins_keyword_and_option_keywords() -> None:
    engine = sa.create_engine("postgresql+psycopg2://iamuser@10.0.0.5/app", plugins=["rds_iam"],
                              aws_region="eu-west-1", iam_port=6543)
    connector = sqlalchemy_rds_iam.connector(engine)
    assert (connector.target.region, connector.target.port) == ("eu-west-1", 6543)


def test_region_is_inferred_from_the_hostname() -> None:
    engine = sa.create_engine(f"{PG}?plugin=rds_iam")
    assert sqlalchemy_rds_iam.connector(engine).target.region == "us-east-1"
    assert sqlalchemy_rds_iam.connector(engine).target.port == 5432
    assert sqlalchemy_rds_iam.connector(sa.create_engine(f"{MY}?plugin=rds_iam")).target.port == 3306


@pytest.mark.usefixtures("aws_env")
def test_postgresql_arguments() -> None:
    engine = sa.create_engine(f"{PG}?plugin=rds_iam")
    args = driver_arguments(engine)
    assert args["sslmode"] == "verify-full"
    assert args["sslrootcert"] == bundle_path("rds-aws")
    assert args["password"].startswith(f"{RDS}:5432/?Action=connect&DBUser=iamuser&")
    # The same dict again (SQLAlchemy reuses it): same shape, still valid.
    cparams = dict(engine.dialect.create_connect_args(engine.url)[1])
    for _ in range(3):
        again = driver_arguments(engine, cparams)
    assert again == args
    assert "password" not in cparams  # the token leaves SQLAlchemy's reused dict


@pytest.mark.usefixtures("aws_env")
def test_users_tls_settings_win() -> None:
    ca = bundle_path("rds-aws")
    engine = sa.create_engine(f"{PG}?plugin=rds_iam&sslmode=verify-ca&sslrootcert={ca}")
    args = driver_arguments(engine)
    assert (args["sslmode"], args["sslrootcert"]) == ("verify-ca", ca)


@pytest.mark.usefixtures("aws_env")
def test_pymysql_gets_our_context() -> None:
    # Not ssl_ca= keywords: PyMySQL would build its own context, which logs TLS keys to
    # $SSLKEYLOGFILE (ssl.create_default_context).
    args = driver_arguments(sa.create_engine(f"{MY}?plugin=rds_iam"))
    assert args["ssl"] is ssl_context(bundle_path("rds-aws"), "verify-full")
    assert not any(k.startswith("ssl_") for k in args)


@pytest.mark.usefixtures("aws_env")
def test_pymysql_url_ssl_dict_becomes_the_equivalent_context() -> None:
    # SQLAlchemy turns URL ssl_* into an ssl dict; PyMySQL would ignore it if we added ssl_ca=.
    ca = bundle_path("rds-aws")
    args = driver_arguments(sa.create_engine(f"{MY}?plugin=rds_iam&ssl_ca={ca}"))
    assert args["ssl"] is ssl_context(ca, "verify-full")
    assert not any(k.startswith("ssl_") for k in args)


@pytest.mark.parametrize(
    ("url", "kwargs"),
    [
        (f"{PG}?plugin=rds_iam&sslmode=disable", {}),
        (f"{PG}?plugin=rds_iam&sslmode=prefer", {}),
        (f"{PG}?plugin=rds_iam", {"connect_args": {"sslmode": "allow"}}),
        (f"{MY}?plugin=rds_iam", {"connect_args": {"ssl_disabled": True}}),
    ],
)
def test_unencrypted_settings_are_refused_by_create_engine(url: str, kwargs: dict[str, Any]) -> None:
    with pytest.raises(InsecureConnectionError, match="IAM token without verified TLS"):
        sa.create_engine(url, **kwargs)


def test_attach_refuses_unencrypted_url() -> None:
    engine = sa.create_engine(f"{PG}?sslmode=disable")
    with pytest.raises(InsecureConnectionError):
        sqlalchemy_rds_iam.attach(engine)


@pytest.mark.parametrize(
    ("url", "kwargs", "error", "message"),
    [
        (f"postgresql+psycopg2://{RDS}/app?plugin=rds_iam", {}, ConfigurationError, "no username"),
        (f"postgresql+psycopg2://u:pw@{RDS}/app?plugin=rds_iam", {}, ConfigurationError, "password"),
        (f"{PG}?plugin=rds_iam&iam_tls=require", {}, ConfigurationError, "iam_tls"),
        (f"{PG}?plugin=rds_iam&aws_region=us-west-2", {}, ConfigurationError, "is in us-east-1"),
        (f"{PG}?plugin=rds_iam&iam_port=abc", {}, ConfigurationError, "integer"),
        (f"{PG}?plugin=rds_iam&iam_ca_bundle=/nope.pem", {}, ConfigurationError, "cannot read"),
        (f"{PG}?plugin=rds_iam&aws_regoin=us-east-1", {}, ConfigurationError, "unknown option"),
        (f"{PG}?plugin=rds_iam", {"creator": lambda: None}, ConfigurationError, "creator"),
        (f"{PG}?plugin=rds_iam&aws_region=us-east-1", {"aws_region": "us-east-2"},
         ConfigurationError, "URL and as a keyword"),
        ("sqlite:///x.db?plugin=rds_iam", {}, UnsupportedDriverError, "postgresql\\+psycopg2"),
    ],
)
def test_errors_are_raised_by_create_engine(url: str, kwargs: dict[str, Any],
                                            error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        sa.create_engine(url, **kwargs)


def test_missing_region_is_a_clear_error_at_first_token() -> None:
    engine = sa.create_engine("postgresql+psycopg2://iamuser@localhost/app?plugin=rds_iam")
    with pytest.raises(ConfigurationError, match="aws_region"):
        driver_arguments(engine)


@pytest.mark.usefixtures("aws_env")
def test_region_from_the_aws_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-south-1")
    engine = sa.create_engine("postgresql+psycopg2://iamuser@localhost/app?plugin=rds_iam")
    assert "%2Fap-south-1%2Frds-db%2F" in driver_arguments(engine)["password"]


def test_no_credentials_is_a_clear_error() -> None:
    engine = sa.create_engine(f"{PG}?plugin=rds_iam")
    with pytest.raises(sqlalchemy_rds_iam.CredentialsError, match="no AWS credentials"):
        driver_arguments(engine)


@pytest.mark.usefixtures("aws_env")
def test_attach_plain_engine_and_twice_is_an_error() -> None:
    engine = sa.create_engine(PG)
    connector = sqlalchemy_rds_iam.attach(engine, iam_tls="verify-ca")
    assert driver_arguments(engine)["sslmode"] == "verify-ca"
    assert connector.target.region == "us-east-1"
    with pytest.raises(ConfigurationError, match="already"):
        sqlalchemy_rds_iam.attach(engine)


def test_attach_validates_keywords() -> None:
    with pytest.raises(ConfigurationError, match="unknown option"):
        sqlalchemy_rds_iam.attach(sa.create_engine(PG), region="us-east-1")
    with pytest.raises(ConfigurationError, match="Engine"):
        sqlalchemy_rds_iam.attach("postgresql://x")


def test_boto3_session_is_used() -> None:
    import boto3

    session = boto3.Session(aws_access_key_id="AKIDSESSION", aws_secret_access_key="s",
                            region_name="sa-east-1")
    engine = sa.create_engine("postgresql+psycopg2://iamuser@localhost/app")
    sqlalchemy_rds_iam.attach(engine, boto3_session=session)
    token = driver_arguments(engine)["password"]
    assert "AKIDSESSION%2F" in token and "%2Fsa-east-1%2F" in token


@pytest.mark.usefixtures("aws_env")
def test_token_never_in_repr_url_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    engine = sa.create_engine(f"{PG}?plugin=rds_iam", echo=True, echo_pool="debug")
    token = driver_arguments(engine)["password"]
    signature = token.rsplit("=", 1)[1]
    shown = [repr(engine), str(engine.url), repr(engine.url), repr(sqlalchemy_rds_iam.connector(engine)),
             caplog.text]
    assert not any(signature in text for text in shown)
    assert "signed IAM token" in caplog.text


def test_import_does_not_load_botocore() -> None:
    import subprocess
    import sys

    code = ("import sys, sqlalchemy_rds_iam; "
            "print(any(m.startswith('botocore') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.usefixtures("aws_env")
def test_region_from_aws_region_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-north-1")  # what Lambda sets; botocore reads only AWS_DEFAULT_REGION
    engine = sa.create_engine("postgresql+psycopg2://iamuser@localhost/app?plugin=rds_iam")
    assert "%2Feu-north-1%2Frds-db%2F" in driver_arguments(engine)["password"]


def test_attach_checks_the_engines_connect_args() -> None:
    engine = sa.create_engine(PG, connect_args={"sslmode": "disable"})
    with pytest.raises(InsecureConnectionError, match="sslmode=disable"):
        sqlalchemy_rds_iam.attach(engine)
    engine = sa.create_engine(MY, connect_args={"ssl_verify_cert": False})
    with pytest.raises(InsecureConnectionError, match="ssl_verify_cert=False"):
        sqlalchemy_rds_iam.attach(engine)


def test_attach_sees_connect_args_that_secure_the_engine() -> None:
    ca = bundle_path("rds-aws")
    engine = sa.create_engine(PG, connect_args={"sslmode": "verify-ca", "sslrootcert": ca})
    connector = sqlalchemy_rds_iam.attach(engine, aws_region="us-east-1")
    assert connector.target.spec.name == "psycopg2"


def test_attach_refuses_an_engine_whose_pool_bypasses_do_connect() -> None:
    engine = sa.create_engine("postgresql+psycopg2://", creator=lambda: None)
    with pytest.raises(ConfigurationError, match="creator= or pool="):
        sqlalchemy_rds_iam.attach(engine)
