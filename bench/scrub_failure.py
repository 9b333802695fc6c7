"""What scrubbing a failed connect's exception costs, per driver (a dead loopback port).

Run: ``.venv/bin/python bench/scrub_failure.py [--runs N]``. No server needed: each attempt
connects to a closed port through ``?plugin=rds_iam``; the time spent in
``scrub.scrub_exception`` (clearing the finished frames of the chain, psycopg's ``pgconn``)
is measured around the real function. It runs on the failure path only. The figure includes
freeing what the cleared frames held (e.g. the driver's half-built connection object),
work the garbage collector would otherwise do later.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from sqlalchemy_rds_iam import plugin, scrub
from sqlalchemy_rds_iam.drivers import DRIVERS
from sqlalchemy_rds_iam.testing.processes import free_port

ASYNC = {name for name, spec in DRIVERS.items() if spec.is_async}


def attempt(url: str, driver: str) -> None:
    if driver in ASYNC:
        async def run() -> None:
            engine = create_async_engine(url, poolclass=NullPool)
            try:
                async with engine.connect():
                    pass
            except Exception:
                pass
            await engine.dispose()

        asyncio.run(run())
        return
    engine = sa.create_engine(url, poolclass=NullPool)
    try:
        engine.connect()
    except Exception:
        pass
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    runs = parser.parse_args().runs
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    times: list[float] = []
    real = scrub.scrub_exception

    def timed(exc: BaseException) -> None:
        start = time.perf_counter()
        real(exc)
        times.append(time.perf_counter() - start)

    plugin.scrub_exception = timed  # type: ignore[assignment]
    for driver in sorted(DRIVERS):
        times.clear()
        url = (f"{DRIVERS[driver].family}+{driver}://u@127.0.0.1:{free_port()}/d"
               "?plugin=rds_iam&aws_region=us-east-1")
        for _ in range(runs):
            attempt(url, driver)
        print(f"{driver:15} scrub median {statistics.median(times) * 1e6:7.0f} us  "
              f"p90 {sorted(times)[int(len(times) * 0.9)] * 1e6:7.0f} us  ({len(times)} failures)")


if __name__ == "__main__":
    main()
