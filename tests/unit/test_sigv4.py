"""The standard-library presigner against botocore, the reference: byte-identical tokens.

Differential property tests: hypothesis draws users (any Unicode, spaces, ``+ / @ % =``),
hosts, ports, regions of every partition, session tokens of realistic length (1-2 KB) and
clocks; the fast path's token must equal botocore's every time (``SigV4QueryAuth``, as the
library signs for other credential sources, and ``boto3.client(...).generate_db_auth_token``).
If they ever differ, the fast path is the bug. The environment reader is held to botocore's
``EnvProvider`` the same way.
"""

from __future__ import annotations

import datetime
import os
import time
from functools import lru_cache
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sqlalchemy_rds_iam import CredentialsError
from sqlalchemy_rds_iam.credentials import BotocoreSource, FrozenCredentials
from sqlalchemy_rds_iam.credentials.environment import EnvironmentSource
from sqlalchemy_rds_iam.sigv4 import presign, supports
from sqlalchemy_rds_iam.tokens import TOKEN_LIFETIME, TokenKey, sign_token

UTC = datetime.timezone.utc
# One region or more per partition: aws, aws-cn, aws-us-gov, aws-iso, aws-iso-b, aws-iso-e,
# aws-iso-f, and European sovereign cloud.
REGIONS = ["us-east-1", "eu-west-1", "ap-southeast-2", "sa-east-1", "cn-north-1",
           "cn-northwest-1", "us-gov-west-1", "us-gov-east-1", "us-iso-east-1",
           "us-isob-east-1", "eu-isoe-west-1", "us-isof-south-1", "eusc-de-east-1"]
PROFILE = settings(max_examples=150, deadline=None,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

users = st.text(st.characters(exclude_categories=("Cs",)) | st.sampled_from(" +/@%="),
                min_size=1, max_size=40)
labels = st.from_regex(r"[A-Za-z0-9]([A-Za-z0-9_-]{0,20}[A-Za-z0-9])?", fullmatch=True)
hosts = st.one_of(
    st.lists(labels, min_size=1, max_size=5).map(".".join),
    st.builds(lambda name, region: f"{name}.cluster-abc123.{region}.rds.amazonaws.com",
              labels, st.sampled_from(REGIONS)),
    st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t))),
    st.sampled_from(["localhost", "LOCALHOST", "db-proxy.proxy-abc.us-east-1.rds.amazonaws.com.",
                     "my_db.internal"]),
)
ports = st.integers(0, 65535) | st.sampled_from([443, 3306, 5432, 6432])
regions = st.sampled_from(REGIONS) | st.from_regex(r"[a-z]{2}(-[a-z]+)+-[0-9]", fullmatch=True)
# STS session tokens are base64; some carry '/', '+' and '=' that must be escaped.
session_tokens = st.none() | st.just("") | st.text(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/+=",
    min_size=1000, max_size=2000)
credentials = st.builds(
    lambda access, secret, token: FrozenCredentials(access, secret, token, None,
                                                    from_environment=True),
    st.from_regex(r"(AKIA|ASIA)[A-Z0-9]{16}", fullmatch=True),
    st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=40, max_size=40)
    | st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=40),
    session_tokens,
)
clocks = st.datetimes(min_value=datetime.datetime(1971, 1, 1),
                      max_value=datetime.datetime(2099, 12, 31, 23, 59, 59))


def _epoch(moment: datetime.datetime) -> float:
    return moment.replace(tzinfo=UTC).timestamp()


def _botocore_sign(key: TokenKey, creds: FrozenCredentials, moment: datetime.datetime) -> str:
    """The library's botocore path (SigV4QueryAuth), at a pinned clock."""
    slow = FrozenCredentials(creds.access_key, creds.secret_key, creds.token, None)
    with mock.patch("botocore.auth.get_current_datetime", return_value=moment):
        return sign_token(key, slow)


@lru_cache(maxsize=1)
def _botocore_session() -> Any:
    import botocore.session

    return botocore.session.Session()


def _client(service: str, region: str, creds: FrozenCredentials) -> Any:
    return _botocore_session().create_client(
        service, region_name=region, aws_access_key_id=creds.access_key,
        aws_secret_access_key=creds.secret_key, aws_session_token=creds.token,
    )


@PROFILE
@given(user=users, host=hosts, port=ports, region=regions, creds=credentials, moment=clocks)
@example(user="a+b/c@d%e=f g", host="DB.Example.COM", port=443, region="cn-north-1",
         creds=FrozenCredentials("AKIDEXAMPLE", "s", "x" * 1500, None, from_environment=True),
         moment=datetime.datetime(2026, 11, 28, 12, 0, 0, 999999))
def test_fast_path_equals_botocore_signer(user: str, host: str, port: int, region: str,
                                          creds: FrozenCredentials,
                                          moment: datetime.datetime) -> None:
    key = TokenKey(host, port, user, region)
    assert supports(host, port)
    fast = sign_token(key, creds, now=_epoch(moment))
    assert fast == _botocore_sign(key, creds, moment)


@settings(PROFILE, max_examples=40)
@given(user=users, host=hosts, port=ports, region=st.sampled_from(REGIONS), creds=credentials,
       moment=clocks)
def test_fast_path_equals_boto3_generate_db_auth_token(
    user: str, host: str, port: int, region: str, creds: FrozenCredentials,
    moment: datetime.datetime,
) -> None:
    client = _client("rds", region, creds)
    with mock.patch("botocore.auth.get_current_datetime", return_value=moment):
        reference = client.generate_db_auth_token(host, port, user)
    assert sign_token(TokenKey(host, port, user, region), creds, now=_epoch(moment)) == reference


@settings(PROFILE, max_examples=40)
@given(host=hosts, region=st.sampled_from(REGIONS), creds=credentials, moment=clocks,
       admin=st.booleans(), expires=st.integers(1, 604800))
def test_dsql_form_equals_boto3(host: str, region: str, creds: FrozenCredentials,
                                moment: datetime.datetime, admin: bool, expires: int) -> None:
    """Aurora DSQL tokens: service ``dsql``, no port, no user, the client's lifetime."""
    client = _client("dsql", region, creds)
    action = "DbConnectAdmin" if admin else "DbConnect"
    generate = (client.generate_db_connect_admin_auth_token if admin
                else client.generate_db_connect_auth_token)
    with mock.patch("botocore.auth.get_current_datetime", return_value=moment):
        reference = generate(host, region, expires)
    assert presign(host, None, {"Action": action}, service="dsql", region=region,
                   expires=expires, credentials=creds, now=_epoch(moment)) == reference


@settings(PROFILE, max_examples=30)
@given(host=hosts, region=st.sampled_from(REGIONS), creds=credentials, moment=clocks,
       admin=st.booleans(), lifetime=st.integers(1, 604800))
def test_dsql_tokens_of_the_library_equal_boto3(host: str, region: str, creds: FrozenCredentials,
                                                moment: datetime.datetime, admin: bool,
                                                lifetime: int) -> None:
    """The library's DSQL path (``sign_token`` with a DSQL key) takes the fast path too."""
    client = _client("dsql", region, creds)
    action = "DbConnectAdmin" if admin else "DbConnect"
    generate = (client.generate_db_connect_admin_auth_token if admin
                else client.generate_db_connect_auth_token)
    with mock.patch("botocore.auth.get_current_datetime", return_value=moment):
        reference = generate(host, region, lifetime)
    key = TokenKey(host, 5432, "admin" if admin else "app", region, service="dsql",
                   action=action, lifetime=lifetime)
    assert sign_token(key, creds, now=_epoch(moment)) == reference


@pytest.mark.parametrize("host", ["::1", "[::1]", "db.example.com:99", "user@db", "dß.example",
                                  "db%2F", "db example", ""])
def test_hosts_outside_the_plain_form_are_left_to_botocore(host: str) -> None:
    assert not supports(host, 5432)
    with pytest.raises(ValueError, match="outside"):
        presign(host, 5432, {}, service="rds-db", region="us-east-1", expires=900,
                credentials=FrozenCredentials("A", "s", None, None))
    assert not supports("db", 70000)


def test_unusual_host_with_environment_credentials_is_signed_by_botocore() -> None:
    creds = FrozenCredentials("AKIDEXAMPLE", "s", None, None, from_environment=True)
    moment = datetime.datetime(2026, 11, 28, 12, 0, 0)
    key = TokenKey("[::1]", 5432, "u", "us-east-1")
    with mock.patch("botocore.auth.get_current_datetime", return_value=moment):
        token = sign_token(key, creds)
    assert token == _botocore_sign(key, creds, moment)
    assert token.startswith("[::1]:5432/?Action=connect&DBUser=u&")


# --- the environment reader against botocore's EnvProvider --------------------------------

def _iso(seconds_from_now: float, style: int) -> str:
    moment = datetime.datetime.now(UTC) + datetime.timedelta(seconds=seconds_from_now)
    return [
        moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
        moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        moment.astimezone(datetime.timezone(datetime.timedelta(hours=5, minutes=30)))
        .isoformat(timespec="milliseconds"),
        moment.astimezone(datetime.timezone(-datetime.timedelta(hours=8))).isoformat(),
        moment.strftime("%Y-%m-%d %H:%M:%S+00:00"),   # not ISO 'T': botocore reads it
        moment.strftime("%a, %d %b %Y %H:%M:%S GMT"),  # RFC 1123: botocore reads it
        moment.strftime("%Y-%m-%dT%H:%M:%S"),          # naive: botocore fails on it
    ][style]


values = st.sampled_from(["", "AKIDENV", "secret/with+chars=", " spaced "])
# Offsets keep 5 s away from botocore's refresh windows (0, 600, 900 s) so that the two
# readers, each on its own clock, cannot land on different sides of one.
offsets = st.one_of(st.integers(-100000, -5), st.integers(5, 595), st.integers(605, 895),
                    st.integers(905, 10**8))
expiries = st.none() | st.just("") | st.builds(_iso, offsets, st.integers(0, 6)) | st.just("junk")


def _outcome(source: Any) -> tuple[Any, ...]:
    try:
        f = source.frozen()
    except CredentialsError as exc:
        return ("error", str(exc))
    return (f.access_key, f.secret_key, f.token, f.expiry)


@settings(PROFILE, max_examples=150)
@given(access=st.none() | values, secret=st.none() | values, security=st.none() | values,
       session=st.none() | values, expiry=expiries)
def test_environment_reader_equals_botocore_env_provider(
    access: str | None, secret: str | None, security: str | None, session: str | None,
    expiry: str | None,
) -> None:
    env = {name: value for name, value in [
        ("AWS_ACCESS_KEY_ID", access), ("AWS_SECRET_ACCESS_KEY", secret),
        ("AWS_SECURITY_TOKEN", security), ("AWS_SESSION_TOKEN", session),
        ("AWS_CREDENTIAL_EXPIRATION", expiry)] if value is not None}
    with mock.patch.dict(os.environ, env):
        ours, reference = _outcome(EnvironmentSource()), _outcome(BotocoreSource())
    assert ours == reference


def test_environment_credentials_are_marked_for_the_fast_path(monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    assert EnvironmentSource().frozen().from_environment
    monkeypatch.setenv("AWS_CREDENTIAL_EXPIRATION", "Tue, 01 Dec 2099 00:00:00 GMT")
    assert not EnvironmentSource().frozen().from_environment  # botocore parsed that one


def test_refresh_windows_follow_botocore(monkeypatch: pytest.MonkeyPatch) -> None:
    """Within 15 min of expiry the environment is re-read; a failed re-read is tolerated
    until 10 min before expiry, then raised; refreshed-but-expired is an error."""
    expiry = "2027-01-15T08:00:00Z"
    expiry_epoch = datetime.datetime(2027, 1, 15, 8, 0, tzinfo=UTC).timestamp()
    now = [expiry_epoch - 3600]
    env = {"AWS_ACCESS_KEY_ID": "AKID1", "AWS_SECRET_ACCESS_KEY": "s1",
           "AWS_CREDENTIAL_EXPIRATION": expiry}
    source = EnvironmentSource(environ=env, clock=lambda: now[0])
    assert source.frozen().access_key == "AKID1"
    env["AWS_ACCESS_KEY_ID"] = "AKID2"
    assert source.frozen().access_key == "AKID1"  # outside the windows: kept
    now[0] = expiry_epoch - 800  # advisory window: re-read
    assert source.frozen().access_key == "AKID2"
    del env["AWS_SECRET_ACCESS_KEY"]
    assert source.frozen().access_key == "AKID2"  # advisory: a failed re-read keeps the old
    now[0] = expiry_epoch - 500  # mandatory window: the failure is raised
    with pytest.raises(CredentialsError, match="missing: AWS_SECRET_ACCESS_KEY"):
        source.frozen()
    env["AWS_SECRET_ACCESS_KEY"] = "s2"
    now[0] = expiry_epoch + 1
    with pytest.raises(CredentialsError, match="still expired"):
        source.frozen()


def test_fast_path_token_is_valid_for_its_lifetime() -> None:
    creds = FrozenCredentials("AKIDEXAMPLE", "s", None, None, from_environment=True)
    token = sign_token(TokenKey("h", 5432, "u", "us-east-1"), creds, now=time.time())
    assert f"X-Amz-Expires={TOKEN_LIFETIME}&" in token


def test_an_unencodable_user_is_a_token_error_on_both_paths() -> None:
    from sqlalchemy_rds_iam import TokenError

    key = TokenKey("h", 5432, "bad\udcffuser", "us-east-1")
    for fast in (True, False):
        creds = FrozenCredentials("AKIDEXAMPLE", "s", None, None, from_environment=fast)
        with pytest.raises(TokenError, match="UnicodeEncodeError"):
            sign_token(key, creds)


@given(st.text(max_size=12))
@example("db\n")
@example("DB.example-1_x")
def test_the_plain_host_set_is_the_regex_it_replaced(host: str) -> None:
    import re

    assert supports(host, 5432) == (re.fullmatch(r"[A-Za-z0-9._-]+", host) is not None)
