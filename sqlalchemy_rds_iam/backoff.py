"""When to try a refused IAM login again: capped exponential backoff with full jitter.

RDS throttles IAM logins (AWS documents about 200 new connections per second per
instance) and a throttled login looks to the client exactly like a bad token: PostgreSQL
``PAM authentication failed`` (SQLSTATE 28000), MySQL 1045. A fleet of Lambda execution
environments scaling out at once signs one token each and overruns the limit; retrying at
once, or at fixed intervals, makes the refused ones collide again. Full jitter (a delay
drawn uniformly from ``[0, min(cap, base * 2**n))``, as in AWS's "Exponential Backoff And
Jitter") spreads them over the time the throttle needs, and the budget bounds what a login
that will never pass (a revoked grant) costs: ``DEFAULT_RETRIES`` tries over at most
``DEFAULT_BUDGET`` seconds. ``bench/fleet.py`` measured the defaults: 300 environments
starting within one second against a limit of 100 per second, and 40 against 10 per
second (a 4-second backlog), all connected with them; without retries, every throttled
login was a failed connect (docs/guides/fleet-scaling.md).

Clock, sleep and random source are injected, so tests are deterministic and async drivers
sleep with ``asyncio.sleep`` (the plugin passes one) instead of blocking their event loop.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

T = TypeVar("T")

__all__ = [
    "DEFAULT_BASE",
    "DEFAULT_BUDGET",
    "DEFAULT_CAP",
    "DEFAULT_RETRIES",
    "RetryPolicy",
    "pause",
    "retrying",
]

#: Retries after the first refused fresh-token login (``iam_connect_retries``).
DEFAULT_RETRIES = 6
#: Seconds after the first refusal of a fresh token within which retries start
#: (``iam_retry_budget``).
DEFAULT_BUDGET = 5.0
#: The first retry waits up to this long; each later one up to twice the previous bound.
DEFAULT_BASE = 0.25
#: No single wait is longer than this.
DEFAULT_CAP = 2.0


class RetryPolicy:
    """How often, and how long, to retry a refused login; ``retries=0`` turns it off.

    ``clock`` is monotonic seconds; ``random`` a uniform draw from [0, 1): the jitter (not
    for secrets: ``S311`` does not apply). A plain class: a dataclass would cost every cold
    start about 0.8 ms to build (issue 16).
    """

    __slots__ = ("base", "budget", "cap", "clock", "random", "retries")

    def __init__(self, retries: int = DEFAULT_RETRIES, budget: float = DEFAULT_BUDGET,
                 base: float = DEFAULT_BASE, cap: float = DEFAULT_CAP,
                 clock: Callable[[], float] = time.monotonic,
                 random: Callable[[], float] = random.random) -> None:
        self.retries = retries
        self.budget = budget
        self.base = base
        self.cap = cap
        self.clock = clock
        self.random = random

    def __repr__(self) -> str:
        return (f"RetryPolicy(retries={self.retries}, budget={self.budget:g}, "
                f"base={self.base:g}, cap={self.cap:g})")

    @classmethod
    def from_options(cls, retries: int | None, budget: float | None) -> RetryPolicy:
        """The policy for ``iam_connect_retries`` / ``iam_retry_budget`` (``None``: default)."""
        return cls(
            retries=DEFAULT_RETRIES if retries is None else retries,
            budget=DEFAULT_BUDGET if budget is None else budget,
        )

    @property
    def enabled(self) -> bool:
        return self.retries > 0 and self.budget > 0

    def bound(self, retry: int) -> float:
        """The longest wait before retry number ``retry`` (1 for the first retry)."""
        return min(self.cap, self.base * 2.0 ** (retry - 1))

    def delays(self) -> Iterator[float]:
        """The wait before each retry, drawn as it is needed; stops when out of budget.

        The clock starts at the first call of ``next()``, i.e. when the first attempt has
        been refused; a wait is cut so that the retry starts within the budget, and no
        retry starts once the budget is spent.
        """
        if not self.enabled:
            return
        deadline = self.clock() + self.budget
        for retry in range(1, self.retries + 1):
            remaining = deadline - self.clock()
            if remaining <= 0:
                return
            yield min(remaining, self.random() * self.bound(retry))


def pause(delay: float, is_async: bool) -> None:
    """Wait ``delay`` seconds without blocking an async driver's event loop.

    An async engine runs the ``do_connect`` listener inside SQLAlchemy's greenlet, where
    ``await_only`` suspends this connect and lets the loop run other tasks meanwhile.
    """
    if is_async:
        from sqlalchemy.util.concurrency import in_greenlet

        if in_greenlet():
            import asyncio

            from sqlalchemy.util import await_only

            await_only(asyncio.sleep(delay))
            return
    _blocking_sleep(delay)


#: What a synchronous driver's retry waits with (a seam for tests).
_blocking_sleep: Callable[[float], None] = time.sleep


def retrying(
    policy: RetryPolicy,
    attempt: Callable[[], T],
    retryable: Callable[[BaseException], bool],
    sleep: Callable[[float], None],
    announce: Callable[[int, float], None],
    refused: Exception | None = None,
) -> T:
    """``attempt()`` until it returns, fails in a way not ``retryable``, or ``policy`` stops.

    ``refused``: the first attempt was already made, and failed with this (the listener
    makes it before this module is loaded: a successful connect never imports it).
    ``announce(number, delay)`` is called before each retry (number 2 for the first retry).
    The last exception propagates unchanged (the driver's own, not wrapped).
    """
    delays = enumerate(policy.delays(), start=2)
    while True:
        if refused is None:
            try:
                return attempt()
            except Exception as exc:
                retry = next(delays, None) if retryable(exc) else None
                if retry is None:
                    raise
        else:
            retry = next(delays, None) if retryable(refused) else None
            if retry is None:
                raise refused
            refused = None
        number, delay = retry
        announce(number, delay)
        sleep(delay)
