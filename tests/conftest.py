"""Shared test setup: no test sees the machine's AWS configuration."""

from __future__ import annotations

import asyncio
import gc
import os
import time
from collections.abc import Awaitable, Callable, Iterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

_dispose = AsyncEngine.dispose


async def _dispose_and_settle(self: AsyncEngine, close: bool = True) -> None:
    """aiomysql's close() leaves its transport "closing" (COM_QUIT not yet flushed); a test
    whose ``asyncio.run`` ends right after ``dispose()`` leaks the socket, a ResourceWarning
    that fails some later test (filterwarnings=error). A few loop ticks let it close."""
    await _dispose(self, close)
    for _ in range(20):
        await asyncio.sleep(0.001)


AsyncEngine.dispose = _dispose_and_settle  # type: ignore[method-assign]


@pytest.fixture(autouse=True)
def _no_ambient_aws(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Clear AWS_* variables and point botocore at empty config files."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    empty = tmp_path_factory.getbasetemp() / "no-aws-config"
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    # `sqlalchemy-rds-iam ca update` writes here; keep a user's stored bundle out of tests.
    monkeypatch.setenv("SQLALCHEMY_RDS_IAM_CACHE_DIR", str(empty.parent / "ca-cache"))
    yield


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """AWS's example key pair in the environment: tokens sign offline (``fakes.set_aws_env``)."""
    from tests.fakes import set_aws_env

    set_aws_env(monkeypatch)


LoopLagMeter = Callable[[Callable[[], Awaitable[object]]], Awaitable[tuple[float, float]]]


@pytest.fixture
def loop_lag() -> LoopLagMeter:
    """``await loop_lag(action)`` runs ``action()`` while a 5 ms ticker measures how long the
    event loop stalls; returns (largest stall, action's duration), in seconds."""

    async def measure(action: Callable[[], Awaitable[object]]) -> tuple[float, float]:
        interval, lag, done = 0.005, 0.0, False

        async def ticker() -> None:
            nonlocal lag
            while not done:
                start = time.perf_counter()
                await asyncio.sleep(interval)
                lag = max(lag, time.perf_counter() - start - interval)

        # A full collection of the whole suite's heap (pytest's, hypothesis', moto's...) takes
        # 150-400 ms on a loaded machine and can land in the window: measure our code, not
        # the test process's garbage. Frozen objects are not scanned again until unfrozen.
        gc.collect()
        gc.freeze()
        task = asyncio.create_task(ticker())
        await asyncio.sleep(0.05)
        began = time.perf_counter()
        try:
            await action()
        finally:
            elapsed = time.perf_counter() - began
            done = True
            await task
            gc.unfreeze()
        return lag, elapsed

    return measure
