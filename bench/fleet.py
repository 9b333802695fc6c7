"""A Lambda fleet scaling out against the IAM throttle, on the emulator.

Run: ``.venv/bin/python bench/fleet.py [--environments 300] [--rate-limit 100]`` as root. It
starts a private emulator (PostgreSQL only, ``--iam-rate-limit R``) in ``--state-dir`` (or
uses the one running there, setting its rate limit) with one AWS identity per environment.

Each simulated execution environment is a process forked after the imports (as Lambda
starts a fresh process per environment, with the package already loaded from the zip): it
gets its own credentials in its environment (``AWS_ACCESS_KEY_ID`` / ``_SECRET_ACCESS_KEY``,
as Lambda sets them), waits for its start instant, drawn uniformly within one second,
creates its own engine (``?plugin=rds_iam``, NullPool), connects and runs ``SELECT 1``.
Each environment signs its own token, so all of them count against the throttle.

Reported per run, once with the defaults and once with ``iam_connect_retries=0``:
connects that failed, p50/p99 time from an environment's start to its first query's
result, logins the server refused as throttled, and tokens signed (distinct tokens the
server saw: a retry reuses its token). ``--json`` prints the figures as one JSON object.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import queue
import random
import secrets
import statistics
import string
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psycopg2  # noqa: F401  (imported before the fork, as a Lambda package is)
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

import sqlalchemy_rds_iam  # noqa: F401
from sqlalchemy_rds_iam.testing import Emulator, EmulatorInfo, Identity, ServerInfo


@dataclass
class RunResult:
    label: str
    environments: int
    failed: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    throttled: int
    peak_logins_per_s: int
    logins: int
    tokens_signed: int
    wall_s: float


def new_identity(i: int) -> Identity:
    alphabet = string.ascii_uppercase + "234567"
    key = "AKIA" + "".join(secrets.choice(alphabet) for _ in range(16))
    return Identity(f"fleet-{i:04d}", key, secrets.token_urlsafe(30))


def environment(url: str, identity: Identity, start_at: Any, offset: float, results: Any,
                index: int) -> None:
    """One execution environment (a forked process): its own credentials, engine, login."""
    os.environ["AWS_ACCESS_KEY_ID"] = identity.access_key_id
    os.environ["AWS_SECRET_ACCESS_KEY"] = identity.secret_access_key
    os.environ.pop("AWS_SESSION_TOKEN", None)
    while start_at.value == 0.0:
        time.sleep(0.001)
    begin = start_at.value + offset
    time.sleep(max(0.0, begin - time.time()))
    ok, error = True, ""
    try:
        engine = sa.create_engine(url, poolclass=NullPool)
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1")).scalar()
        engine.dispose()
    except Exception as exc:  # a failed connect is a figure, not a crash
        ok, error = False, type(exc).__name__
    results.put((index, ok, time.time() - begin, error))


def thread_environment(url: str, identity: Identity, start: threading.Event, begin: list[float],
                       offset: float, results: queue.Queue[Any], index: int) -> None:
    """One execution environment as a thread: its own engine and credentials (a provider)."""
    start.wait()
    at = begin[0] + offset
    time.sleep(max(0.0, at - time.time()))
    ok, error = True, ""
    try:
        engine = sa.create_engine(url, poolclass=NullPool, credentials_provider=lambda: (
            identity.access_key_id, identity.secret_access_key))
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1")).scalar()
        engine.dispose()
    except Exception as exc:
        ok, error = False, type(exc).__name__
    results.put((index, ok, time.time() - at, error))


def _start_processes(url: str, identities: list[Identity], offsets: list[float]) -> Any:
    ctx = multiprocessing.get_context("fork")
    start_at = ctx.Value("d", 0.0)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=environment, args=(url, ident, start_at, off, results, i))
        for i, (ident, off) in enumerate(zip(identities, offsets, strict=True))
    ]
    for proc in procs:
        proc.start()
    began = time.time() + 0.5  # every process is waiting by then
    start_at.value = began
    outcomes = [results.get(timeout=300) for _ in procs]
    for proc in procs:
        proc.join(30)
    return began, outcomes


def _start_threads(url: str, identities: list[Identity], offsets: list[float]) -> Any:
    start, begin, results = threading.Event(), [0.0], queue.Queue()  # type: ignore[var-annotated]
    threads = [
        threading.Thread(target=thread_environment,
                         args=(url, ident, start, begin, off, results, i), daemon=True)
        for i, (ident, off) in enumerate(zip(identities, offsets, strict=True))
    ]
    for thread in threads:
        thread.start()
    begin[0] = time.time() + 0.2
    start.set()
    outcomes = [results.get(timeout=300) for _ in threads]
    return begin[0], outcomes


def run_fleet(server: ServerInfo, identities: list[Identity], label: str,
              extra_query: dict[str, str], spread: float = 1.0, seed: int = 7,
              mode: str = "processes") -> RunResult:
    url = server.url(**extra_query)
    rng = random.Random(seed)
    offsets = [rng.uniform(0.0, spread) for _ in identities]
    since = server.log_offset()
    start = _start_processes if mode == "processes" else _start_threads
    began, outcomes = start(url, identities, offsets)
    wall = time.time() - began
    times = sorted(t * 1000 for _, ok, t, _ in outcomes if ok)
    failed = [o for o in outcomes if not o[1]]
    logins = server.verifications(since)
    mine = {i.access_key_id for i in identities}
    logins = [v for v in logins if v.access_key_id in mine or v.access_key_id is None]
    return RunResult(
        label=label,
        environments=len(identities),
        failed=len(failed),
        p50_ms=round(statistics.median(times), 1) if times else float("nan"),
        p99_ms=round(_percentile(times, 0.99), 1) if times else float("nan"),
        max_ms=round(times[-1], 1) if times else float("nan"),
        throttled=sum(v.reason.startswith("throttled") for v in logins),
        peak_logins_per_s=_peak([v.time for v in logins]),
        logins=len(logins),
        tokens_signed=len({v.token_sha256 for v in logins}),
        wall_s=round(wall, 2),
    )


def _peak(times: list[float], window: float = 1.0) -> int:
    """The most logins the server decided on within any one-second window."""
    times, best, first = sorted(times), 0, 0
    for last, at in enumerate(times):
        while times[first] <= at - window:
            first += 1
        best = max(best, last - first + 1)
    return best


def _percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile (p99 of 300 values is the 297th)."""
    import math

    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[rank - 1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--environments", "-n", type=int, default=300)
    parser.add_argument("--rate-limit", "-r", type=int, default=100,
                        help="the emulator's --iam-rate-limit (new tokens per second)")
    parser.add_argument("--spread", type=float, default=1.0,
                        help="the environments start within this many seconds")
    parser.add_argument("--state-dir", default=None,
                        help="the emulator's state directory (default: a new one in /tmp, "
                        "stopped afterwards)")
    parser.add_argument("--only", choices=("defaults", "off"), default=None,
                        help="run only one of the two configurations")
    parser.add_argument("--mode", choices=("processes", "threads"), default="processes",
                        help="an environment is a forked process (default) or a thread")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    # The refusal notes (one WARNING per failed environment) are figures here, not news.
    logging.getLogger("sqlalchemy_rds_iam").setLevel(logging.ERROR)

    identities = [new_identity(i) for i in range(args.environments)]
    own = args.state_dir is None
    state_dir = Path(args.state_dir or tempfile.mkdtemp(prefix="rds-iam-fleet-", dir="/tmp"))
    emulator = Emulator(state_dir, servers=["postgresql"], identities=identities,
                        rate_limit=args.rate_limit)
    previous = None if own else Emulator(state_dir).status()
    try:
        info: EmulatorInfo = emulator.start()
        server = info.postgresql
        # Load the dialect and the plugin's entry point before forking, as a warm import.
        sa.create_engine(server.url(), poolclass=NullPool).dispose()
        runs = []
        configs = [("defaults", {}), ("retries off", {"iam_connect_retries": "0"})]
        for label, query in configs:
            if args.only and (args.only == "off") != (label == "retries off"):
                continue
            time.sleep(1.5)  # the throttle's one-second window is empty again
            runs.append(run_fleet(server, identities, label, query, args.spread,
                                  mode=args.mode))
    finally:
        if own:
            emulator.stop()
        else:  # someone else's emulator: as it was, but for the identities added
            emulator.set_rate_limit(previous.rate_limit if previous else None)
    if args.json:
        print(json.dumps({"rate_limit": args.rate_limit, "spread_s": args.spread,
                          "runs": [asdict(r) for r in runs]}))
        return 0
    print(f"fleet: {args.environments} environments starting within {args.spread:g} s, "
          f"IAM rate limit {args.rate_limit}/s (emulator), PostgreSQL via psycopg2, "
          f"one {'process' if args.mode == 'processes' else 'thread'} per environment")
    print(f"{'':<12} {'failed':>6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} "
          f"{'throttled':>9} {'peak/s':>6} {'logins':>6} {'tokens':>6} {'wall s':>6}")
    for r in runs:
        print(f"{r.label:<12} {r.failed:>6} {r.p50_ms:>8} {r.p99_ms:>8} {r.max_ms:>8} "
              f"{r.throttled:>9} {r.peak_logins_per_s:>6} {r.logins:>6} {r.tokens_signed:>6} "
              f"{r.wall_s:>6}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
