"""A process forked while another thread signs (gunicorn/celery pre-fork) can still connect.

The child inherits the per-key signing lock in its held state, but not the thread that
would release it: without fresh locks after ``fork()``, its first connect hangs forever.
"""

from __future__ import annotations

import os
import threading
import time
import warnings
from typing import Any

import pytest
import sqlalchemy as sa

from sqlalchemy_rds_iam.credentials import FrozenCredentials
from sqlalchemy_rds_iam.options import parse_options
from sqlalchemy_rds_iam.plugin import IamConnector
from sqlalchemy_rds_iam.tokens import SignedToken, TokenCache, TokenKey

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")


class GatedSource:
    """Credentials whose loading blocks until ``release`` is set (a slow STS call)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()

    def frozen(self) -> FrozenCredentials:
        self.entered.set()
        self.release.wait(10)
        return FrozenCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                                 None, None)

    def region(self) -> str | None:
        return "us-east-1"

    def describe(self) -> str:
        return "gated fake"


def _fork_and_run(child: Any, timeout: float = 3.0) -> tuple[int, float]:
    """Fork; the child runs ``child()`` and exits 0 on success. Returns (status, seconds)."""
    read, write = os.pipe()
    with warnings.catch_warnings():  # 3.12+ warns about fork() in a threaded process
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 1
        try:
            began = time.monotonic()
            child()
            os.write(write, f"{time.monotonic() - began:.3f}".encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            elapsed = os.read(read, 64).decode() or "nan"
            os.close(read)
            return os.waitstatus_to_exitcode(status), float(elapsed)
        time.sleep(0.01)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    os.close(read)
    return -9, float("inf")


def test_child_signs_while_the_parent_is_mid_signing() -> None:
    cache = TokenCache()
    key = TokenKey("db.example", 5432, "iamuser", "us-east-1")
    gate = threading.Event()

    def slow() -> SignedToken:
        gate.wait(10)
        return SignedToken("parent-token", "AKID", None)

    signer = threading.Thread(target=cache.get, args=(key, slow))
    signer.start()
    time.sleep(0.05)  # the signer now holds the per-key lock
    try:
        def child() -> None:
            token = cache.get(key, lambda: SignedToken("child-token", "AKID", None))
            assert token == "child-token"

        status, elapsed = _fork_and_run(child)
    finally:
        gate.set()
        signer.join()
    assert status == 0, "the child hung on the lock it inherited held"
    assert elapsed < 1.0


def test_child_connector_gets_a_token_within_a_second(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = sa.create_engine("postgresql+psycopg2://iamuser@db.example/app")
    source = GatedSource()
    connector = IamConnector(engine.url, engine.dialect,
                             parse_options(keywords={"aws_region": "us-east-1"}), source=source)
    parent = threading.Thread(target=connector.token)
    parent.start()
    assert source.entered.wait(5)  # mid-signing, lock held
    try:
        def child() -> None:
            source.release.set()  # the child's own credentials load at once
            token = connector.token()
            assert token.startswith("db.example:5432/?Action=connect")

        status, elapsed = _fork_and_run(child)
    finally:
        source.release.set()
        parent.join()
    assert status == 0, "the forked child could not get a token"
    assert elapsed < 1.0


def test_control_without_the_reset_the_child_hangs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Proves the test can fail: with the after-fork hook disabled, the child times out."""
    from sqlalchemy_rds_iam import tokens

    monkeypatch.setattr(tokens.TokenCache, "_after_fork", lambda self: None)
    cache = TokenCache()
    key = TokenKey("db.example", 5432, "iamuser", "us-east-1")
    gate = threading.Event()
    signer = threading.Thread(target=cache.get,
                              args=(key, lambda: (gate.wait(10), SignedToken("t", "A", None))[1]))
    signer.start()
    time.sleep(0.05)
    try:
        status, _ = _fork_and_run(lambda: cache.get(key, lambda: SignedToken("c", "A", None)),
                                  timeout=1.5)
    finally:
        gate.set()
        signer.join()
    assert status == -9
