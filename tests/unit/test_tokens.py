"""Token signing (pinned against boto3) and the cache (fixed clock, single flight)."""

from __future__ import annotations

import datetime
import threading
import time
from collections.abc import Iterator

import pytest

from sqlalchemy_rds_iam.credentials import FrozenCredentials
from sqlalchemy_rds_iam.tokens import (
    CREDENTIAL_MARGIN,
    REUSE_MARGIN,
    TOKEN_LIFETIME,
    SignedToken,
    TokenCache,
    TokenKey,
    sign_token,
)

HOST = "db.cluster-abc123.eu-west-1.rds.amazonaws.com"
CREDS = FrozenCredentials(
    "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "FQoGZXIvYXdzEXAMPLE", None
)
PINNED = (
    "db.cluster-abc123.eu-west-1.rds.amazonaws.com:5432/?Action=connect&DBUser=iam_user"
    "&X-Amz-Algorithm=AWS4-HMAC-SHA256"
    "&X-Amz-Credential=AKIDEXAMPLE%2F20261128%2Feu-west-1%2Frds-db%2Faws4_request"
    "&X-Amz-Date=20261128T120000Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host"
    "&X-Amz-Security-Token=FQoGZXIvYXdzEXAMPLE"
    "&X-Amz-Signature=6b887fce0b4c6e63dd54f67538fc8746d2b1c7fd8928a8a480ad10f32373ef65"
)


@pytest.fixture
def fixed_signing_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    import botocore.auth

    fixed = datetime.datetime(2026, 11, 28, 12, 0, 0)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *a, **k: fixed)
    yield


@pytest.mark.usefixtures("fixed_signing_clock")
def test_token_text_is_pinned_and_equals_boto3() -> None:
    import boto3

    ours = sign_token(TokenKey(HOST, 5432, "iam_user", "eu-west-1"), CREDS)
    client = boto3.client(
        "rds",
        region_name="eu-west-1",
        aws_access_key_id=CREDS.access_key,
        aws_secret_access_key=CREDS.secret_key,
        aws_session_token=CREDS.token,
    )
    assert ours == PINNED
    assert ours == client.generate_db_auth_token(HOST, 5432, "iam_user")


@pytest.mark.usefixtures("fixed_signing_clock")
def test_user_with_special_characters_matches_boto3() -> None:
    import boto3

    creds = FrozenCredentials("AKIDEXAMPLE", "secret", None, None)
    client = boto3.client("rds", region_name="us-east-1", aws_access_key_id="AKIDEXAMPLE",
                          aws_secret_access_key="secret")
    for user in ("app user", "a+b@c/d", "üser"):
        assert sign_token(TokenKey("h", 3306, user, "us-east-1"), creds) == (
            client.generate_db_auth_token("h", 3306, user)
        )


def test_signing_does_not_log_the_signature(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    token = sign_token(TokenKey(HOST, 5432, "iam_user", "eu-west-1"), CREDS)
    signature = token.rsplit("=", 1)[1]
    assert signature not in caplog.text
    assert "FQoGZXIvYXdzEXAMPLE" not in caplog.text
    # botocore.auth still logs for other signing in this thread once we are done
    import logging

    logging.getLogger("botocore.auth").debug("other signing")
    assert "other signing" in caplog.text


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Signer:
    def __init__(self, expiry: float | None = None, delay: float = 0.0) -> None:
        self.calls = 0
        self.expiry = expiry
        self.delay = delay
        self._lock = threading.Lock()

    def __call__(self) -> SignedToken:
        with self._lock:
            self.calls += 1
            n = self.calls
        time.sleep(self.delay)
        return SignedToken(f"token-{n}", "AKID", self.expiry)


def test_cache_reuses_until_margin_before_token_expiry() -> None:
    clock, signer = Clock(), Signer()
    cache = TokenCache(clock)
    assert cache.get("k", signer) == "token-1"
    clock.now += TOKEN_LIFETIME - REUSE_MARGIN - 1
    assert cache.get("k", signer) == "token-1"
    clock.now += 1
    assert cache.get("k", signer) == "token-2"
    assert signer.calls == 2


def test_cache_refreshes_before_credentials_expire() -> None:
    clock = Clock()
    signer = Signer(expiry=clock.now + 120)  # temporary credentials with 2 minutes left
    cache = TokenCache(clock)
    assert cache.get("k", signer) == "token-1"
    clock.now += 120 - CREDENTIAL_MARGIN - 1
    assert cache.get("k", signer) == "token-1"
    clock.now += 1
    assert cache.get("k", signer) == "token-2"


def test_cache_keys_are_independent() -> None:
    clock, signer = Clock(), Signer()
    cache = TokenCache(clock)
    a = TokenKey("h", 5432, "alice", "us-east-1")
    b = TokenKey("h", 5432, "bob", "us-east-1")
    assert cache.get(a, signer) != cache.get(b, signer)
    assert cache.get(a, signer) == "token-1"
    cache.clear()
    assert cache.get(a, signer) == "token-3"


def test_single_flight_under_64_threads() -> None:
    signer = Signer(delay=0.05)
    cache = TokenCache()
    barrier = threading.Barrier(64)
    results: list[str] = []

    def worker() -> None:
        barrier.wait()
        results.append(cache.get("k", signer))

    threads = [threading.Thread(target=worker) for _ in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert signer.calls == 1
    assert results == ["token-1"] * 64


def test_failed_signing_is_not_cached() -> None:
    cache = TokenCache(Clock())
    calls = 0

    def failing() -> SignedToken:
        nonlocal calls
        calls += 1
        raise RuntimeError("no credentials")

    for _ in range(2):
        with pytest.raises(RuntimeError):
            cache.get("k", failing)
    assert calls == 2


def test_reprs_hide_secrets() -> None:
    assert CREDS.secret_key not in repr(CREDS)
    assert "FQoG" not in repr(CREDS)
    assert "tok" not in repr(SignedToken("tok-secret", "AKID", None)).replace("SignedToken", "")


def test_advance_moves_the_cache_clock_past_the_refresh_time() -> None:
    """The documented way to simulate a frozen process (examples/lambda)."""
    now = [1_000_000.0]
    cache = TokenCache(clock=lambda: now[0])
    signed: list[str] = []

    def sign() -> SignedToken:
        signed.append(f"token-{len(signed)}")
        return SignedToken(signed[-1], "AKID", None)

    key = TokenKey("h", 5432, "u", "us-east-1")
    assert cache.get(key, sign) == "token-0"
    cache.advance(599)  # within the 900 s lifetime less the 300 s margin
    assert cache.clock() == 1_000_599.0
    assert cache.get(key, sign) == "token-0"
    cache.advance(2)
    assert cache.get(key, sign) == "token-1"
    now[0] += 10  # the clock it wraps still runs
    assert cache.clock() == 1_000_611.0
