"""Aurora DSQL: tokens equal boto3's dsql client, engine wiring per driver, lifetime option."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sqlalchemy_rds_iam
from sqlalchemy_rds_iam import ConfigurationError
from sqlalchemy_rds_iam.cabundle import bundle_path
from sqlalchemy_rds_iam.credentials import FrozenCredentials
from sqlalchemy_rds_iam.testing.dsql_verifier import verify_dsql_token
from sqlalchemy_rds_iam.tokens import (
    CREDENTIAL_MARGIN,
    REUSE_MARGIN,
    SignedToken,
    TokenCache,
    TokenKey,
    credential_margin,
    reuse_margin,
    sign_token,
    token_shape,
)
from tests.fakes import driver_arguments

HOST = "abcdefghijklmnopqrstuvwxyz.dsql.us-east-1.on.aws"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
CREDS = FrozenCredentials("AKIDEXAMPLE", SECRET, "FQoGZXIvYXdzEXAMPLE", None)
FIXED = datetime.datetime(2026, 11, 28, 12, 0, 0)
PINNED_ADMIN = (
    f"{HOST}/?Action=DbConnectAdmin&X-Amz-Algorithm=AWS4-HMAC-SHA256"
    "&X-Amz-Credential=AKIDEXAMPLE%2F20261128%2Fus-east-1%2Fdsql%2Faws4_request"
    "&X-Amz-Date=20261128T120000Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host"
    "&X-Amz-Security-Token=FQoGZXIvYXdzEXAMPLE"
    "&X-Amz-Signature=5ae2f6ddfa63f688c7846ed0e24a2f08a8bf74825d69ce80a4e6d70861df641f"
)
PINNED_USER_1H = (
    f"{HOST}/?Action=DbConnect&X-Amz-Algorithm=AWS4-HMAC-SHA256"
    "&X-Amz-Credential=AKIDEXAMPLE%2F20261128%2Fus-east-1%2Fdsql%2Faws4_request"
    "&X-Amz-Date=20261128T120000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host"
    "&X-Amz-Security-Token=FQoGZXIvYXdzEXAMPLE"
    "&X-Amz-Signature=49bca95a9bb32ea0d91b6d24c96fdf04bc4c6955e2a723c43939e150f2119b02"
)


@pytest.fixture
def fixed_signing_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    import botocore.auth

    from sqlalchemy_rds_iam import sigv4

    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *a, **k: FIXED)
    # Environment credentials are signed by the standard-library presigner: its clock too.
    monkeypatch.setattr(sigv4, "clock", lambda: FIXED.replace(tzinfo=datetime.timezone.utc).timestamp())
    yield


def dsql_client(creds: FrozenCredentials = CREDS, region: str = "us-east-1") -> Any:
    import boto3

    return boto3.client("dsql", region_name=region, aws_access_key_id=creds.access_key,
                        aws_secret_access_key=creds.secret_key, aws_session_token=creds.token)


def key(user: str, lifetime: int | None = None, host: str = HOST, region: str = "us-east-1") -> TokenKey:
    return TokenKey(host, 5432, user, region, *token_shape("dsql", user, lifetime))


@pytest.mark.usefixtures("fixed_signing_clock")
def test_tokens_are_pinned_and_equal_boto3s() -> None:
    client = dsql_client()
    admin = sign_token(key("admin"), CREDS)
    assert admin == PINNED_ADMIN == client.generate_db_connect_admin_auth_token(HOST, "us-east-1")
    user = sign_token(key("app", 3600), CREDS)
    assert user == PINNED_USER_1H == client.generate_db_connect_auth_token(HOST, "us-east-1", 3600)


@pytest.mark.usefixtures("fixed_signing_clock")
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    cluster=st.from_regex(r"\A[a-z0-9]{26}\Z"),
    region=st.sampled_from(["us-east-1", "us-east-2", "eu-west-1", "ap-northeast-1"]),
    user=st.sampled_from(["admin", "app", "reporting"]),
    lifetime=st.integers(min_value=1, max_value=604_800),
    token=st.one_of(st.none(), st.from_regex(r"\A[A-Za-z0-9/+=]{1,40}\Z")),
)
def test_any_cluster_user_and_lifetime_equals_boto3(
    cluster: str, region: str, user: str, lifetime: int, token: str | None
) -> None:
    host = f"{cluster}.dsql.{region}.on.aws"
    creds = FrozenCredentials("AKIDEXAMPLE", SECRET, token, None)
    client = dsql_client(creds, region)
    method = (client.generate_db_connect_admin_auth_token if user == "admin"
              else client.generate_db_connect_auth_token)
    ours = sign_token(key(user, lifetime, host, region), creds)
    assert ours == method(host, region, lifetime)
    now = FIXED.replace(tzinfo=datetime.timezone.utc).timestamp()
    assert verify_dsql_token(ours, host=host, role=user, region=region,
                             secrets={"AKIDEXAMPLE": SECRET}, now=now).ok


@pytest.mark.usefixtures("fixed_signing_clock")
def test_verifier_refuses_the_wrong_action_role_host_key_and_age() -> None:
    now = FIXED.replace(tzinfo=datetime.timezone.utc).timestamp()
    secrets = {"AKIDEXAMPLE": SECRET}
    admin, user = sign_token(key("admin"), CREDS), sign_token(key("app", 3600), CREDS)

    def check(token: str, **kw: Any) -> str:
        args: dict[str, Any] = {"host": HOST, "role": "admin", "region": "us-east-1",
                                "secrets": secrets, "now": now, **kw}
        verdict = verify_dsql_token(token, **args)
        assert "X-Amz-Signature" not in verdict.reason
        return verdict.reason if not verdict.ok else "ok"

    assert check(admin) == "ok"
    assert check(user, role="app") == "ok"
    assert "needs DbConnect" in check(admin, role="app")  # an admin token for another role
    assert "needs DbConnectAdmin" in check(user)  # a regular token for admin
    assert "host" in check(admin, host="other.dsql.us-east-1.on.aws")
    assert "scope" in check(admin, region="us-west-2")
    assert "unknown access key" in check(admin, secrets={})
    assert "signature" in check(admin, secrets={"AKIDEXAMPLE": "wrong"})
    assert "expired" in check(admin, now=now + 901)
    assert check(user, role="app", now=now + 3599) == "ok"
    assert "future" in check(admin, now=now - 1000)
    rds_style = admin.replace(f"{HOST}/", f"{HOST}:5432/")
    assert "port" in check(rds_style)


# --- the engine ---------------------------------------------------------------------------


DRIVERS = ["postgresql+psycopg2", "postgresql+psycopg", "postgresql+psycopg_async",
           "postgresql+asyncpg", "postgresql+pg8000"]


def password_and_ca(url: str) -> tuple[str, Any]:
    make = sa.create_engine
    if "async" in url:
        from sqlalchemy.ext.asyncio import create_async_engine

        make = create_async_engine  # type: ignore[assignment]
    engine = make(url)
    connector = sqlalchemy_rds_iam.connector(engine)
    return driver_arguments(engine)[connector.target.spec.password_key], connector.target.ca_bundle


@pytest.mark.usefixtures("aws_env", "fixed_signing_clock")
@pytest.mark.parametrize("driver", DRIVERS)
def test_engine_signs_dsql_tokens_with_amazon_roots(driver: str) -> None:
    admin, ca = password_and_ca(f"{driver}://admin@{HOST}/postgres?plugin=rds_iam")
    creds = FrozenCredentials("AKIDEXAMPLE", SECRET, None, None)
    assert admin == dsql_client(creds).generate_db_connect_admin_auth_token(HOST, "us-east-1")
    assert ca == bundle_path("amazon-roots")
    user, _ = password_and_ca(f"{driver}://app@{HOST}/postgres?plugin=rds_iam&iam_token_lifetime=3600")
    assert user == dsql_client(creds).generate_db_connect_auth_token(HOST, "us-east-1", 3600)
    assert ":5432" not in user and "DBUser" not in user


@pytest.mark.usefixtures("aws_env")
def test_attach_and_iam_host_for_dsql() -> None:
    engine = sa.create_engine("postgresql+psycopg2://admin@127.0.0.1:6543/postgres")
    connector = sqlalchemy_rds_iam.attach(engine, iam_host=HOST, iam_token_lifetime=600)
    assert (connector.key().service, connector.key().action, connector.key().lifetime) == (
        "dsql", "DbConnectAdmin", 600)
    assert "X-Amz-Expires=600" in connector.token()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql+psycopg2://u@db.abc123.us-east-1.rds.amazonaws.com/db?plugin=rds_iam"
         "&iam_token_lifetime=3600", "DSQL endpoints only"),
        (f"postgresql+psycopg2://u@{HOST}/postgres?plugin=rds_iam&iam_token_lifetime=0", "between 1"),
        (f"postgresql+psycopg2://u@{HOST}/postgres?plugin=rds_iam&iam_token_lifetime=604801",
         "604800"),
        (f"postgresql+psycopg2://u@{HOST}/postgres?plugin=rds_iam&iam_token_lifetime=1h",
         "integer"),
        (f"mysql+pymysql://u@{HOST}/db?plugin=rds_iam", "PostgreSQL"),
        (f"postgresql+psycopg2://u@{HOST}/postgres?plugin=rds_iam&aws_region=us-west-2",
         "us-east-1"),
    ],
)
def test_option_mistakes_are_early_errors(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        sa.create_engine(url)


# --- cache margins scale with the lifetime ------------------------------------------------

def test_margins_scale_with_the_lifetime() -> None:
    assert (reuse_margin(900), credential_margin(900)) == (REUSE_MARGIN, CREDENTIAL_MARGIN)
    assert reuse_margin(604_800) == 604_800 / 3
    assert credential_margin(604_800) == CREDENTIAL_MARGIN
    assert reuse_margin(90) == 30 and credential_margin(90) == 6


def test_a_week_long_token_is_reused_for_two_thirds_of_it() -> None:
    now = [1_800_000_000.0]
    cache = TokenCache(lambda: now[0])
    calls = []

    def sign() -> SignedToken:
        calls.append(1)
        return SignedToken(f"t{len(calls)}", "AKID", None)

    week = key("app", 604_800)
    assert cache.get(week, sign) == "t1"
    now[0] += 604_800 * 2 / 3 - 1
    assert cache.get(week, sign) == "t1"
    now[0] += 1
    assert cache.get(week, sign) == "t2"
