"""Container credentials without botocore, held to botocore's ``ContainerProvider``.

Both read the same local endpoint (``testing.credentials_endpoint``, a real HTTP server on
127.0.0.1): the same keys, the same refresh decisions on the same clock (counted as requests
the endpoint got), the same failures (bad JSON, 401/403/500, a host botocore refuses).
"""

from __future__ import annotations

import datetime
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.credentials import ContainerProvider
from botocore.utils import ContainerMetadataFetcher
from hypothesis import given, settings
from hypothesis import strategies as st

from sqlalchemy_rds_iam import CredentialsError
from sqlalchemy_rds_iam.credentials.container import (
    ALLOWED_HOSTS,
    ATTEMPTS,
    ContainerSource,
    allowed_problem,
    chain_reaches_container,
    endpoint_url,
)
from sqlalchemy_rds_iam.credentials.environment import EnvironmentSource
from sqlalchemy_rds_iam.testing.credentials_endpoint import CredentialsEndpoint
from sqlalchemy_rds_iam.testing.info import Identity
from sqlalchemy_rds_iam.tokens import TokenKey, sign_token

BASE = 1_900_000_000.0  # a fixed "now" (2030) for every clock below
UTC = datetime.timezone.utc


def identity(n: int) -> Identity:
    return Identity(f"id{n}", f"ASIACONTAINER{n:07d}", f"secret-{n}-" + "s" * 30, f"token-{n}")


def at(seconds: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(seconds, UTC)


@pytest.fixture
def endpoint() -> Iterator[CredentialsEndpoint]:
    with CredentialsEndpoint(identity(1)) as ep:
        ep.serve(identity(1), expiration=at(BASE + 3600))
        yield ep


class Clock:
    def __init__(self) -> None:
        self.now = BASE

    def __call__(self) -> float:
        return self.now

    def aware(self) -> datetime.datetime:
        return at(self.now)


def no_sleep(_: float) -> None:
    return None


def ours(env: dict[str, str], clock: Clock) -> Callable[[], tuple[str, float | None]]:
    source = ContainerSource(env, clock=clock, sleep=no_sleep)

    def get() -> tuple[str, float | None]:
        frozen = source.frozen()
        return frozen.access_key, frozen.expiry

    return get


def botocores(env: dict[str, str], clock: Clock) -> Callable[[], tuple[str, float | None]]:
    provider = ContainerProvider(environ=env, fetcher=ContainerMetadataFetcher(sleep=no_sleep))
    holder: dict[str, Any] = {}

    def get() -> tuple[str, float | None]:
        if "creds" not in holder:
            creds = provider.load()
            creds._time_fetcher = clock.aware  # botocore's injectable refresh clock
            holder["creds"] = creds
        creds = holder["creds"]
        frozen = creds.get_frozen_credentials()
        return frozen.access_key, creds._expiry_time.timestamp()

    return get


def outcome(get: Callable[[], tuple[str, float | None]], endpoint: CredentialsEndpoint) -> tuple:
    before = len(endpoint.requests)
    try:
        result: tuple = ("ok", *get())
    except Exception as exc:  # botocore's errors are its own classes; ours CredentialsError
        if not isinstance(exc, CredentialsError) and get.__qualname__.startswith("ours"):
            raise
        result = ("error",)
    return (*result, len(endpoint.requests) - before)


#: One refresh story: (clock, what the endpoint does next, expected outcome) per step.
#: What the endpoint does: ("serve", n, expires-at) or ("fail", status, body, times).
E1, E2 = BASE + 3600, BASE + 7200
STORY: list[tuple[float, tuple, tuple]] = [
    (BASE, (), ("ok", "ASIACONTAINER0000001", E1, 1)),  # first load: one request
    (E1 - 20 * 60, (), ("ok", "ASIACONTAINER0000001", E1, 0)),  # outside the windows
    (E1 - 14 * 60, ("fail", 500, b"", 3),  # advisory: a failure keeps the old keys
     ("ok", "ASIACONTAINER0000001", E1, ATTEMPTS)),
    (E1 - 14 * 60, ("serve", 2, E2), ("ok", "ASIACONTAINER0000002", E2, 1)),  # advisory: new
    (E2 - 9 * 60, ("fail", 500, b"", 3), ("error", ATTEMPTS)),  # mandatory: a failure raises
    (E2 - 9 * 60, ("fail", 200, b"{not json", 3), ("error", ATTEMPTS)),
    (E2 - 9 * 60, ("serve", 3, E2 - 10 * 60), ("error", 1)),  # refreshed, still expired
    (E2 - 9 * 60, ("serve", 4, E2 + 3600), ("ok", "ASIACONTAINER0000004", E2 + 3600, 1)),
    (E2 + 3600 - 60, ("fail", 200, b'{"AccessKeyId": "x"}', 1), ("error", 1)),  # fields
]


def apply(endpoint: CredentialsEndpoint, action: tuple) -> None:
    if action and action[0] == "serve":
        endpoint.serve(identity(action[1]), expiration=at(action[2]))
    elif action:
        endpoint.fail(*action[1:])


@pytest.mark.parametrize("implementation", [ours, botocores])
def test_same_refresh_decisions_as_botocore(endpoint: CredentialsEndpoint,
                                             implementation: Any) -> None:
    """The same story told to both: keys, expiry and requests made agree at every step."""
    clock = Clock()
    get = implementation(endpoint.env(), clock)
    seen = []
    for now, action, _ in STORY:
        clock.now = now
        apply(endpoint, action)
        seen.append(outcome(get, endpoint))
    assert seen == [expected for _, _, expected in STORY]


@pytest.mark.parametrize("failure", [(401, None), (403, "wrong"), (500, "ok"), (404, "ok")])
def test_http_errors_are_retried_three_times_then_raised_by_both(
    endpoint: CredentialsEndpoint, failure: tuple[int, str | None]
) -> None:
    status, auth = failure
    env = endpoint.env()
    if auth is None:
        del env["AWS_CONTAINER_AUTHORIZATION_TOKEN"]
    elif auth == "wrong":
        env["AWS_CONTAINER_AUTHORIZATION_TOKEN"] = "not-the-token"
    else:
        endpoint.fail(status, b"", ATTEMPTS * 3)
    if status == 404:
        env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] += "/elsewhere"
        endpoint._answers.clear()
    for implementation in (ours, botocores):
        assert outcome(implementation(env, Clock()), endpoint) == ("error", ATTEMPTS)
    assert {r.status for r in endpoint.requests} == {status}
    with pytest.raises(CredentialsError, match=f"HTTP {status}"):
        ContainerSource(env, sleep=no_sleep).frozen()


def test_errors_name_the_fix_and_never_the_body_or_the_token(
    endpoint: CredentialsEndpoint, caplog: pytest.LogCaptureFixture
) -> None:
    env = endpoint.env()
    env["AWS_CONTAINER_AUTHORIZATION_TOKEN"] = "Bearer-sekrit-authz-value"
    caplog.set_level(logging.DEBUG)
    with pytest.raises(CredentialsError) as info:
        ContainerSource(env, sleep=no_sleep).frozen()
    assert "HTTP 403" in str(info.value) and "AWS_CONTAINER_AUTHORIZATION_TOKEN" in str(info.value)
    assert "wrong authorization" not in str(info.value)  # the body
    endpoint.fail(200, b'{"SecretAccessKey": "leaky-secret", "Token": 5', 3)
    with pytest.raises(CredentialsError, match="Unable to parse JSON") as info:
        ContainerSource(endpoint.env(), sleep=no_sleep).frozen()
    text = str(info.value) + caplog.text
    for secret in ("sekrit", "leaky-secret", endpoint.auth_token):
        assert secret not in text
    # positive control: the credentials do arrive when all is well, and are not logged
    source = ContainerSource(endpoint.env(), sleep=no_sleep)
    assert source.frozen().secret_key == identity(1).secret_access_key
    assert identity(1).secret_access_key not in caplog.text
    assert identity(1).session_token not in caplog.text
    assert "ASIACONTAINER0000001" in caplog.text  # the key id is logged: the harness sees logs


@pytest.mark.parametrize("url", [
    "http://evil.example/creds", "http://169.254.169.254/latest", "http://10.0.0.1/x",
    "ftp://example.com/x", "http:///nohost",
])
def test_a_host_botocore_refuses_is_refused_without_a_request(
    endpoint: CredentialsEndpoint, url: str
) -> None:
    env = {**endpoint.env(), "AWS_CONTAINER_CREDENTIALS_FULL_URI": url}
    with pytest.raises(ValueError, match="Unsupported host"):
        ContainerProvider(environ=env, fetcher=ContainerMetadataFetcher(sleep=no_sleep)).load()
    with pytest.raises(CredentialsError, match="Unsupported host") as info:
        ContainerSource(env, sleep=no_sleep).frozen()
    assert "AWS_CONTAINER_CREDENTIALS_FULL_URI" in str(info.value)
    assert endpoint.requests == []


def local_address() -> str | None:
    """This machine's address on its default route (not loopback), if it has one."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 1))  # UDP: sends nothing
        except OSError:
            return None
        address: str = probe.getsockname()[0]
    return None if address.startswith("127.") else address


def test_a_listening_endpoint_on_a_disallowed_host_gets_no_request_and_no_token() -> None:
    """Plain http to a host that is neither loopback nor AWS's link-local endpoints: the
    authorization token must not be sent there. The server listens (and, reached over its
    loopback twin, answers): it records nothing."""
    address = local_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address")
    with CredentialsEndpoint(identity(1), host=address) as hostile:
        env = hostile.env()
        with pytest.raises(CredentialsError, match="Unsupported host"):
            ContainerSource(env, sleep=no_sleep).frozen()
        assert hostile.requests == []
        # positive control: the same server is reachable, and would have seen the token
        import urllib.request

        request = urllib.request.Request(  # noqa: S310 -- our own http endpoint
            hostile.url, headers={"Authorization": hostile.auth_token})
        with urllib.request.urlopen(request, timeout=5) as answer:  # noqa: S310
            assert answer.status == 200
        assert [r.authorized for r in hostile.requests] == [True]


def test_a_scheme_other_than_http_is_refused_by_both(endpoint: CredentialsEndpoint) -> None:
    env = {**endpoint.env(), "AWS_CONTAINER_CREDENTIALS_FULL_URI": "ftp://127.0.0.1/x"}
    with pytest.raises(Exception, match="Not supported URL scheme"):
        ContainerProvider(environ=env, fetcher=ContainerMetadataFetcher(sleep=no_sleep)).load()
    with pytest.raises(CredentialsError, match="Not supported URL scheme"):
        ContainerSource(env, sleep=no_sleep).frozen()


HOSTS = st.one_of(
    st.sampled_from([*ALLOWED_HOSTS, "127.0.0.1", "127.8.9.10", "[::1]", "[fd00:ec2::23]",
                     "169.254.170.3", "LOCALHOST", "localhost.", "[::ffff:127.0.0.1]",
                     "0.0.0.0",  # noqa: S104 -- a URL's host, not a bind
                     "[fe80::1]", "example.com", "127.0.0.1.nip.io", ""]),
    st.from_regex(r"[a-z0-9.-]{1,20}", fullmatch=True),
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(lambda ip: f"[{ip}]"),
)


@settings(max_examples=300, deadline=None)
@given(scheme=st.sampled_from(["http", "https", "HTTP", "ftp", ""]), host=HOSTS,
       port=st.sampled_from(["", ":80", ":8080"]), userinfo=st.sampled_from(["", "u:p@"]))
def test_allowed_hosts_match_botocore(scheme: str, host: str, port: str, userinfo: str) -> None:
    url = f"{scheme}://{userinfo}{host}{port}/creds"
    try:
        ContainerMetadataFetcher()._validate_allowed_url(url)
        botocore_allows = True
    except ValueError:
        botocore_allows = False
    assert (allowed_problem(url) is None) == botocore_allows, url


def test_relative_uri_goes_to_the_ecs_host_and_wins_over_the_full_one() -> None:
    env = {"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/creds?id=1",
           "AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://127.0.0.1:1/x"}
    assert endpoint_url(env) == "http://169.254.170.2/v2/creds?id=1"
    assert ContainerMetadataFetcher().full_url(env["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"]) \
        == endpoint_url(env)
    # a relative URI cannot smuggle in another host: the check runs on the result
    assert allowed_problem(endpoint_url({"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI":
                                         "@evil.example/"})) is not None


def test_the_token_file_wins_is_read_at_every_fetch_and_must_be_one_line(
    endpoint: CredentialsEndpoint, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(endpoint.auth_token)
    env = {**endpoint.env(), "AWS_CONTAINER_AUTHORIZATION_TOKEN": "loses",
           "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": str(token_file)}
    clock = Clock()
    source = ContainerSource(env, clock=clock, sleep=no_sleep)
    assert source.frozen().access_key == "ASIACONTAINER0000001"
    token_file.write_text(endpoint.auth_token + "\n")  # a trailing newline: botocore refuses
    clock.now = E1 - 9 * 60
    with pytest.raises(CredentialsError, match="line break"):
        source.frozen()
    with pytest.raises(ValueError, match="not a legal header value"):
        ContainerProvider(environ=env, fetcher=ContainerMetadataFetcher(sleep=no_sleep)).load()
    token_file.unlink()
    with pytest.raises(CredentialsError, match="AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"):
        source.frozen()
    assert all(r.authorized for r in endpoint.requests)


def test_forget_drops_the_credentials_and_the_next_use_fetches(
    endpoint: CredentialsEndpoint,
) -> None:
    source = ContainerSource(endpoint.env(), sleep=no_sleep)
    assert source.frozen().access_key == "ASIACONTAINER0000001"
    endpoint.serve(identity(2), expiration=at(E2))
    assert source.frozen().access_key == "ASIACONTAINER0000001"  # still valid: kept
    source.forget()
    assert source.access_key_hint() is None
    assert source.frozen().access_key == "ASIACONTAINER0000002"
    assert len(endpoint.requests) == 2


# -- which source the default chain uses -----------------------------------------------------


def test_the_default_chain_takes_the_container_path_only_when_botocore_would(
    endpoint: CredentialsEndpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {**endpoint.env(), "AWS_CONFIG_FILE": str(tmp_path / "none"),
           "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.boto
    assert chain_reaches_container(env)
    source = EnvironmentSource(env)
    frozen = source.frozen()
    assert frozen.from_environment and frozen.access_key == "ASIACONTAINER0000001"
    assert "container credentials from http://127.0.0.1" in source.describe()
    for extra in ({"AWS_PROFILE": "dev"}, {"AWS_ROLE_ARN": "arn:aws:iam::1:role/r"},
                  {"BOTO_CONFIG": "/dev/null"}):
        assert not chain_reaches_container({**env, **extra}), extra
    (tmp_path / "config").write_text("[default]\nregion = eu-west-1\n")
    assert not chain_reaches_container({**env, "AWS_CONFIG_FILE": str(tmp_path / "config")})
    assert not chain_reaches_container({"AWS_CONFIG_FILE": str(tmp_path / "none")})


def test_keys_in_the_environment_still_win_over_the_container(
    endpoint: CredentialsEndpoint,
) -> None:
    env = {**endpoint.env(), "AWS_ACCESS_KEY_ID": "AKIDENV", "AWS_SECRET_ACCESS_KEY": "s"}
    assert EnvironmentSource(env).frozen().access_key == "AKIDENV"
    assert endpoint.requests == []


def test_an_expiry_only_botocore_reads_hands_the_whole_chain_to_botocore(
    endpoint: CredentialsEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint.fail(200, b'{"AccessKeyId": "ASIAODD", "SecretAccessKey": "s", "Token": "t", '
                       b'"Expiration": "2031-01-01 00:00:00+00:00"}', 2)
    for name, value in endpoint.env().items():
        monkeypatch.setenv(name, value)
    source = EnvironmentSource()
    assert source.frozen().access_key == "ASIAODD"
    assert len(endpoint.requests) == 2  # ours, then botocore's
    assert "botocore.credentials" in sys.modules


def test_container_credentials_sign_byte_identical_to_botocore(
    endpoint: CredentialsEndpoint,
) -> None:
    env = endpoint.env()
    key = TokenKey("db.cluster-abc.us-east-1.rds.amazonaws.com", 5432, "iamuser", "us-east-1")
    frozen = ContainerSource(env, sleep=no_sleep).frozen()
    assert frozen.from_environment  # the standard-library signer
    theirs = botocores(env, Clock())()
    assert theirs[0] == frozen.access_key
    from sqlalchemy_rds_iam import sigv4
    from sqlalchemy_rds_iam.credentials import FrozenCredentials

    botocore_signed = FrozenCredentials(frozen.access_key, frozen.secret_key, frozen.token,
                                        frozen.expiry)  # not from_environment: botocore signs
    now = BASE
    original = sigv4.clock
    try:
        sigv4.clock = lambda: now
        import botocore.auth

        real = botocore.auth.get_current_datetime
        botocore.auth.get_current_datetime = lambda: at(now).replace(tzinfo=None)
        try:
            assert sign_token(key, frozen) == sign_token(key, botocore_signed)
        finally:
            botocore.auth.get_current_datetime = real
    finally:
        sigv4.clock = original


def test_a_fresh_process_with_container_variables_signs_without_botocore(
    endpoint: CredentialsEndpoint, tmp_path: Path
) -> None:
    """Lambda SnapStart's case: only the container variables; no botocore import at all."""
    code = (
        "import sys, sqlalchemy as sa, sqlalchemy_rds_iam\n"
        "engine = sa.create_engine('postgresql+psycopg2://iamuser@db.cluster-abc.us-east-1"
        ".rds.amazonaws.com/app?plugin=rds_iam')\n"
        "token = sqlalchemy_rds_iam.connector(engine).token()\n"
        "assert 'X-Amz-Credential=ASIACONTAINER0000001' in token, 'not signed with the keys'\n"
        "assert 'X-Amz-Security-Token=token-1' in token\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('botocore', 'boto3')))\n"
    )
    env = {**endpoint.env(), "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
           "HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=False, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
    assert [r.status for r in endpoint.requests] == [200]
    assert endpoint.auth_token not in out.stdout + out.stderr


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_child_forked_mid_fetch_fetches_on_its_own(endpoint: CredentialsEndpoint) -> None:
    """The fetch lock, inherited held by a forked child (gunicorn/celery pre-fork while
    another thread fetches), is replaced there: the child's first use does not hang."""
    from tests.unit.test_fork_safety import _fork_and_run

    source = ContainerSource(endpoint.env(), sleep=no_sleep)
    source._lock.acquire()  # what a thread in the middle of a fetch holds
    try:
        def child() -> None:
            assert source.frozen().access_key == "ASIACONTAINER0000001"

        status, elapsed = _fork_and_run(child, timeout=5.0)
    finally:
        source._lock.release()
    assert status == 0, "the forked child hung on the fetch lock it inherited"
    assert elapsed < 3.0
